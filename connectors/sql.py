"""Base for connectors over a departmental SQL database (SQLAlchemy Core, async)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connectors.base import Connector, log
from gateway.errors import SourceTimeout, SourceUnavailable
from gateway.settings import SourceSettings



class SqlConnector(Connector):
    """A connector reading one database through an async SQLAlchemy engine.

    Subclasses build portable Core statements (no dialect-specific SQL: the
    same code runs on SQLite, PostgreSQL and MariaDB) and run them with
    ``fetch``, which applies the source's timeout and converts every driver
    failure into a ``SourceError``; ``grouped`` and ``single`` map the rows.
    """

    def __init__(self, settings: SourceSettings, engine: AsyncEngine | None = None) -> None:
        super().__init__(settings)
        # A fixed pool: overflow connections would be opened and discarded per
        # burst (for aiosqlite, a new thread each); waiting for one is bounded
        # by the source's timeout.
        self.engine = engine or create_async_engine(
            settings.url, pool_size=settings.pool_size, max_overflow=0,
            pool_timeout=settings.timeout_seconds,
        )
        self._latency = settings.simulated_latency_ms / 1000

    async def fetch(self, statement: sa.Executable) -> Sequence[sa.Row[Any]]:
        """Run one statement and return all its rows."""
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                if self._latency:
                    await asyncio.sleep(self._latency)
                async with self.engine.connect() as conn:
                    result = await conn.execute(statement)
                    return result.all()
        except (TimeoutError, sa_exc.TimeoutError):  # the query's or the pool's
            raise SourceTimeout(
                self.id,
                f"source {self.id} ({self.settings.department}) did not answer "
                f"within {self.settings.timeout_seconds:g} s",
            ) from None
        except (sa_exc.DBAPIError, sa_exc.InterfaceError, OSError) as exc:
            # Log the driver's words (which may name hosts or SQL) here, not to the client.
            log.warning("source %s failed: %s", self.id, exc)
            raise SourceUnavailable(
                self.id, f"source {self.id} ({self.settings.department}) is unavailable"
            ) from None

    async def check(self) -> None:
        await self.fetch(sa.select(sa.literal(1)))

    async def aclose(self) -> None:
        await self.engine.dispose()
