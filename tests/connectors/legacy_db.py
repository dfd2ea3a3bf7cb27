"""Build a connector over a legacy database holding exactly the given rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.sql import SqlConnector
from core.errors import BadSourceData
from core.config import SourceSettings


async def connector_over(
    connector_class: type[SqlConnector],
    url: str,
    metadata: sa.MetaData,
    rows: Mapping[sa.Table, Sequence[Mapping[str, Any]]],
    source_id: str = "test-source",
) -> SqlConnector:
    """Recreate ``metadata``'s tables at ``url``, insert ``rows`` and return a
    connector of ``connector_class`` reading them. Close it with ``aclose``."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            for table, table_rows in rows.items():
                if table_rows:
                    await conn.execute(table.insert(), list(table_rows))
    except BaseException:
        await engine.dispose()  # no connection left for the garbage collector to warn about
        raise
    settings = SourceSettings(
        id=source_id, connector=connector_class.kind, url=url,
        department="测试部门", city="惠州",
    )
    return connector_class(settings, engine=engine)


async def assert_bad_source_data(connector: SqlConnector, load: str, keys: Sequence[Any]) -> None:
    """``connector.<load>(keys)`` fails with ``BadSourceData`` naming the source;
    the connector is closed either way."""
    try:
        with pytest.raises(BadSourceData) as caught:
            await getattr(connector, load)(keys)
    finally:
        await connector.aclose()
    assert caught.value.extensions == {"code": "BAD_UPSTREAM_RESPONSE", "source": "test-source"}
