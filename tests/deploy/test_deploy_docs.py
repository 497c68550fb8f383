"""docs/DEPLOY.md: its SQL (cluster TTLs, backups) parses in ClickHouse, and its sizing is the measured one."""

from __future__ import annotations

import re

import pytest

from syncwatch.errors import StoreError
from syncwatch.store import Store
from tests.deploy.files import REPO

DOC = (REPO / "docs/DEPLOY.md").read_text()


def _statements() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", DOC, flags=re.S)
    return [s.strip() for block in blocks for s in block.split(";") if s.strip()]


def test_every_sql_statement_on_the_page_parses(store: Store) -> None:
    """formatQuery parses ON CLUSTER DDL and BACKUP that chDB could not execute."""
    statements = _statements()
    assert len(statements) >= 10
    for statement in statements:
        store.query("SELECT formatQuery({q:String})", {"q": statement})
    with pytest.raises(StoreError, match="Syntax error"):
        store.query("SELECT formatQuery({q:String})", {"q": "ALTER TABLE t ON CLUSTER c MODIFY TTL"})


def test_retention_ttls_name_real_columns_of_the_shipped_tables() -> None:
    migrations = "\n".join(p.read_text() for p in sorted((REPO / "syncwatch/migrations").glob("*.sql")))
    ttls = re.findall(r"ALTER TABLE syncwatch\.(\w+)_local ON CLUSTER syncwatch\s+"
                      r"MODIFY TTL (?:toDateTime\()?(\w+)", DOC)
    assert len(ttls) >= 7
    for table, expression in ttls:
        body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\) ENGINE", migrations, flags=re.S)
        assert body, f"no table {table} in the migrations"
        assert re.search(rf"^\s+{expression}\s", body.group(1), flags=re.M), f"{table} has no column {expression}"


def test_the_sizing_table_follows_from_the_measured_figures() -> None:
    report = (REPO / "docs/benchmarks/storage.md").read_text()
    per_day = {}
    for table, rate, per_row in re.findall(r"^\| (\w+) \| [\d,]+ \| ([\d.]+) \|.*\| (\d+) B \|$", report, flags=re.M):
        per_day[table] = float(rate) * int(per_row)
    yearly_kb = sum(per_day.values()) * 365 / 1000
    assert f"{round(yearly_kb)} KB per consultant-year" in DOC
    for consultants, megabytes in ((500, "37 MB"), (5_000, "373 MB")):
        row = next(line for line in DOC.splitlines() if line.startswith(f"| {consultants:,} consultants"))
        assert megabytes in row and abs(yearly_kb * consultants / 1000 - float(megabytes.split()[0])) < 2
