"""The utilities connector maps the accounts' monthly bills (fen, integer dates, codes) to bills per USCC."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import demo.market
import demo.utilities
from connectors.market import registrations
from connectors.utilities import UtilitiesConnector, accounts, bills, metadata, suppliers
from core.codes import complete_uscc
from core.records.utilities import Utility
from demo.population import build_population
from tests.connectors.legacy_db import assert_bad_source_data, connector_over

pytestmark = pytest.mark.anyio


A = complete_uscc("91441302MA4W0K3X1")
B = "91441300195971850Y"
C = complete_uscc("91441322MA4W0K3X3")  # an account without bills
MISSING = complete_uscc("91441303MA4W0K3X2")
GRID, WATER, GAS = "广东电网有限责任公司惠州供电局", "惠州市惠城区供水有限公司", "惠州市燃气有限公司"


def account(supplier: str, number: str, code: str, utility: str):
    return {"GYSDM": supplier, "HH": number, "TYSHXYDM": code, "HM": "惠州市测试有限公司",
            "YWLX": utility, "YDDZ": "广东省惠州市惠城区江北文昌一路1号"}


def bill(supplier: str, number: str, month: str, usage: str, due_fen: int, due: int,
         paid: int | None = None, paid_fen: int = 0):
    return {"GYSDM": supplier, "HH": number, "ZDNY": month, "YL": Decimal(usage),
            "YJJE": due_fen, "JFQX": due, "JFRQ": paid, "SJJE": paid_fen}


LEGACY = {
    suppliers: [{"GYSDM": "GD01", "GYSMC": GRID}, {"GYSDM": "SW441302", "GYSMC": WATER},
                {"GYSDM": "RQ01", "GYSMC": GAS}],
    accounts: [
        account("GD01", "0302000000001", A, "DF"),
        # Account numbers are unique per supplier only: 00000001 is A's water and B's gas.
        account("SW441302", "00000001", A, "SF"),
        account("RQ01", "00000001", B, "RQ"),
        account("GD01", "0302000000002", C, "DF"),
    ],
    bills: [
        bill("SW441302", "00000001", "202510", "31", 12245, 20251125, 20251120, 12245),
        bill("GD01", "0302000000001", "202510", "12101", 923679, 20251115, 20251201, 923679),
        bill("GD01", "0302000000001", "202511", "11873.5", 906277, 20251215, None, 300000),
        bill("SW441302", "00000001", "202511", "29", 11455, 20251225, 0, 0),
        bill("RQ01", "00000001", "202511", "412.3", 185535, 20251220, 20251210, 185535),
    ],
}


async def test_bills_of_every_account_are_mapped_newest_first_in_key_order(database_url):
    connector = await connector_over(UtilitiesConnector, database_url, metadata, LEGACY)
    try:
        b, missing, a, c = await connector.load_utility_bills([B, MISSING, A, C])
    finally:
        await connector.aclose()
    assert missing == [] and c == []
    # Newest month first, then by utility code: DF electricity, SF water.
    assert [(x.period, x.utility, x.account) for x in a] == [
        ("2025-11", Utility.ELECTRICITY, "0302000000001"), ("2025-11", Utility.WATER, "00000001"),
        ("2025-10", Utility.ELECTRICITY, "0302000000001"), ("2025-10", Utility.WATER, "00000001"),
    ]
    electricity, water, late, paid = a
    assert (electricity.supplier, water.supplier) == (GRID, WATER)
    assert electricity.usage == Decimal("11873.50") and water.usage == Decimal("29")
    assert electricity.amount_due == Decimal("9062.77") and str(water.amount_due) == "114.55"
    assert electricity.due_on == date(2025, 12, 15) and water.due_on == date(2025, 12, 25)
    # Unpaid (NULL, or 0 from the old system), one of them partly.
    assert electricity.paid_on is None and electricity.amount_paid == Decimal("3000.00")
    assert water.paid_on is None and water.amount_paid == 0
    assert late.paid_on == date(2025, 12, 1) > late.due_on and late.amount_paid == late.amount_due
    assert paid.paid_on == date(2025, 11, 20) and paid.amount_paid == Decimal("122.45")
    (gas,) = b
    assert (gas.utility, gas.account, gas.supplier) == (Utility.GAS, "00000001", GAS)
    assert gas.usage == Decimal("412.3") and gas.amount_due == Decimal("1855.35")
    assert gas.provenance.source == "test-source"


async def test_a_batch_is_one_statement(database_url):
    connector = await connector_over(UtilitiesConnector, database_url, metadata, LEGACY)
    try:
        rows = await connector.load_utility_bills([A, B, C, MISSING])
        assert connector.statements_sent == 1 and len(rows) == 4
        many = [complete_uscc(f"91441302MA4W{n:04d}X") for n in range(400)]
        await connector.load_utility_bills([B, *many])
        assert connector.statements_sent == 2
    finally:
        await connector.aclose()


@pytest.mark.parametrize("bad", [
    {"YWLX": "XX"},  # an unknown utility code (on the account)
    {"ZDNY": "202513"}, {"ZDNY": "2025-1"},
    {"JFQX": 20251399}, {"JFQX": 0}, {"JFQX": 2025121},  # no readable due date
    {"JFRQ": 20251232},
])
async def test_unknown_code_or_unreadable_date_is_bad_source_data(database_url, bad):
    row = {**bill("GD01", "0302000000001", "202511", "100", 6500, 20251215), **bad}
    connector = await connector_over(UtilitiesConnector, database_url, metadata, {
        suppliers: [{"GYSDM": "GD01", "GYSMC": GRID}],
        accounts: [{**account("GD01", "0302000000001", A, "DF"),
                    **{k: v for k, v in bad.items() if k == "YWLX"}}],
        bills: [{k: v for k, v in row.items() if k != "YWLX"}],
    })
    await assert_bad_source_data(connector, "load_utility_bills", [A])


def late_or_unpaid(bills_, today: date):
    return [b for b in bills_ if (b.paid_on and b.paid_on > b.due_on)
            or (b.paid_on is None and b.due_on < today)]


def electricity_by_account(bills_):
    found: dict[str, list] = {}
    for b in bills_:
        if b.utility is Utility.ELECTRICITY:
            found.setdefault(b.account, []).append(b.usage)
    return found


async def test_demo_cases_produce_their_records(tmp_path):
    today = date(2026, 11, 28)
    population = build_population(size=200, persons=20, today=today)
    connector = await connector_over(
        UtilitiesConnector, f"sqlite+aiosqlite:///{tmp_path / 'utilities.db'}", metadata,
        dict(demo.utilities.rows(population)),
    )
    show = population.showcase
    status = {row["tyshxydm"]: row["djzt"]
              for table, rows in demo.market.rows(population) if table is registrations
              for row in rows}
    cases = {"utilities_late", "electricity_declining"}
    operating = [e for e in population.enterprises if status[e.uscc] == "1" and not e.cases & cases]
    closed = [e for e in population.enterprises if status[e.uscc] != "1" and not e.cases & cases]
    try:
        (late,) = await connector.load_utility_bills([show["utilities_late"].uscc])
        (declining,) = await connector.load_utility_bills([show["electricity_declining"].uscc])
        ordinary = await connector.load_utility_bills([e.uscc for e in operating])
        none = await connector.load_utility_bills([e.uscc for e in closed])
    finally:
        await connector.aclose()
    months = [f"2026-{m:02d}" for m in range(10, 0, -1)] + ["2025-12", "2025-11"]
    assert len(late_or_unpaid(late, today)) >= 4
    assert any(b.utility is Utility.ELECTRICITY and b.paid_on is None and b.due_on < today
               for b in late)
    for usage in electricity_by_account(declining).values():
        assert len(usage) == 12 and usage == sorted(usage)  # newest first: smallest first
        assert usage[0] < Decimal("0.65") * usage[-1]
    assert ordinary and closed and all(bills_ == [] for bills_ in none)
    for e, bills_ in zip(operating, ordinary):
        assert late_or_unpaid(bills_, today) == []
        electricity = electricity_by_account(bills_)
        assert electricity  # every operating enterprise has an electricity account
        for usage in electricity.values():
            assert usage[0] > Decimal("0.7") * usage[-1]  # no decline
        accounts_ = {b.account for b in bills_}
        assert len(bills_) == 12 * len(accounts_)
        assert sorted({b.period for b in bills_}, reverse=True) == months
        assert all(b.amount_due > 0 and b.usage > 0 for b in bills_)
    utilities = [{b.utility for b in bills_} for bills_ in ordinary]
    assert 0.7 < sum(Utility.WATER in u for u in utilities) / len(utilities) < 1
    assert 0 < sum(Utility.GAS in u for u in utilities) / len(utilities) < 0.6
