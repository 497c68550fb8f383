"""`syncwatch bench storage`: bytes on disk per event, record and span, measured on simulator data.

The simulated firm's feed is decoded as the collector would decode it (storage_load.py), inserted
into a fresh chDB store with the real migrations, merged with OPTIMIZE FINAL (so duplicates are
gone and each table is in the few large parts it settles into), and then system.parts gives each
table's compressed and uncompressed bytes. docs/DEPLOY.md derives its sizing table from these
figures.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from syncwatch import schema
from syncwatch.bench.storage_load import decoded_tables
from syncwatch.settings import Settings
from syncwatch.simulator.delivery import FeedConfig
from syncwatch.store import Store

# the tables that grow with the firm's activity; the rest (keys, users, rule runs) stay small
MEASURED = ("events", "records", "otel_traces", "quarantine")

PARTS_SQL = """
SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), sum(bytes_on_disk), count()
FROM system.parts
WHERE database = {db:String} AND active AND table IN {tables:Array(String)}
GROUP BY table
"""

COLUMNS_SQL = """
SELECT table, name, data_compressed_bytes, data_uncompressed_bytes
FROM system.columns
WHERE database = {db:String} AND table IN {tables:Array(String)}
ORDER BY data_compressed_bytes DESC
"""


@dataclass(frozen=True)
class TableSize:
    table: str
    rows: int
    compressed_bytes: int
    uncompressed_bytes: int
    bytes_on_disk: int
    parts: int

    @property
    def ratio(self) -> float:
        return self.uncompressed_bytes / self.compressed_bytes if self.compressed_bytes else 0.0

    @property
    def bytes_per_row(self) -> float:
        return self.bytes_on_disk / self.rows if self.rows else 0.0


def load(store: Store, config: FeedConfig, rules_dir: Path) -> dict[str, int]:
    """Insert the whole feed; returns rows inserted per table (before deduplication)."""
    inserted: dict[str, int] = {}
    for table, rows in decoded_tables(config, rules_dir):
        store.insert_arrow(table, rows)
        inserted[table] = inserted.get(table, 0) + rows.num_rows
    return inserted


def measure(store: Store, tables: tuple[str, ...] = MEASURED) -> list[TableSize]:
    """Merge each table to its final form, then read its size from system.parts."""
    for table in tables:
        store.command(f"OPTIMIZE TABLE `{table}` FINAL")
    rows = store.query(PARTS_SQL, {"db": store.database, "tables": list(tables)})
    sizes = {r[0]: TableSize(r[0], *(int(v) for v in r[1:])) for r in rows}
    return [sizes.get(t, TableSize(t, 0, 0, 0, 0, 0)) for t in tables]


def top_columns(store: Store, tables: tuple[str, ...] = MEASURED, per_table: int = 5) -> dict[str, list[dict]]:
    """The columns that take the most compressed bytes in each table (where to look for savings)."""
    found: dict[str, list[dict]] = {t: [] for t in tables}
    for table, name, compressed, uncompressed in store.query(COLUMNS_SQL, {"db": store.database,
                                                                           "tables": list(tables)}):
        # compact parts (small tables) keep no per-column sizes: they read as 0 and say nothing
        if compressed and len(found[table]) < per_table:
            found[table].append({"column": name, "compressed_bytes": int(compressed),
                                 "uncompressed_bytes": int(uncompressed)})
    return found


def run(config: FeedConfig, out_dir: str, rules_dir: Path | None = None, store_dir: Path | None = None,
        dsn: str = "", database: str = "bench_storage") -> dict:
    """Generate, load, measure, and write storage.json and storage.md into out_dir.

    Without `dsn` a fresh chDB store goes in a temporary directory (under `store_dir`); with one
    (e.g. a ClickHouse server), `database` is created there, measured and dropped.
    """
    with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=store_dir) as tmp:
        store = Store(dsn or f"chdb://{Path(tmp).resolve() / 'store'}", database)
        try:
            report = _measure_feed(store, config, rules_dir or Settings().rules_dir)
        finally:
            store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
            store.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "storage.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "storage.md").write_text(markdown(report))
    click.echo(markdown(report))
    return report


def _measure_feed(store: Store, config: FeedConfig, rules_dir: Path) -> dict[str, Any]:
    schema.migrate(store)
    started = time.perf_counter()
    inserted = load(store, config, rules_dir)
    load_seconds = time.perf_counter() - started
    return _report(config, inserted, measure(store), top_columns(store), load_seconds)


def _report(config: FeedConfig, inserted: dict[str, int], sizes: list[TableSize], columns: dict[str, list[dict]],
            load_seconds: float) -> dict[str, Any]:
    days = config.days or 1
    return {
        "benchmark": "storage",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "inputs": {"seed": config.seed, "consultants": config.consultants, "clients": config.clients,
                   "days": days, "fault_rate": config.fault_rate},
        "load_seconds": round(load_seconds, 2),
        "inserted_rows": inserted,
        "tables": [asdict(s) | {"ratio": round(s.ratio, 2), "bytes_per_row": round(s.bytes_per_row, 1),
                                "rows_per_consultant_day": s.rows / config.consultants / days} for s in sizes],
        "top_columns": columns,
    }


def markdown(report: dict[str, Any]) -> str:
    i = report["inputs"]
    lines = [
        "# bench storage",
        "",
        f"{report['date']}, {report['machine']['platform']}. Simulated firm: {i['consultants']:,} consultants "
        f"(opening headcount), {i['clients']:,} clients, {i['days']} days, seed {i['seed']}, fault rate "
        f"{i['fault_rate']}. Rows decoded by the collector's decoders, loaded into chDB with the real "
        f"migrations in {report['load_seconds']} s, then OPTIMIZE FINAL; sizes from system.parts (active parts).",
        "",
        "| table | rows | per consultant-day | compressed | uncompressed | ratio | on disk per row |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in report["tables"]:
        lines.append(f"| {t['table']} | {t['rows']:,} | {t['rows_per_consultant_day']:.3f} | "
                     f"{t['compressed_bytes']:,} B | {t['uncompressed_bytes']:,} B | {t['ratio']:.1f}x | "
                     f"{t['bytes_per_row']:.0f} B |")
    lines += ["", "Largest columns (compressed bytes):", ""]
    for table, cols in report["top_columns"].items():
        if cols:
            lines.append(f"- {table}: " + ", ".join(f"{c['column']} {c['compressed_bytes']:,} B" for c in cols))
    return "\n".join(lines) + "\n"
