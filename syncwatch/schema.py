"""Versioned schema migrations: numbered .sql files applied in order, recorded in a table."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from syncwatch import cluster_ddl
from syncwatch.errors import MigrationError, StoreError
from syncwatch.store import Store

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self) -> list[str]:
        return split_statements(self.sql)

    def rendered(self, cluster: str, database: str) -> list[str]:
        """The statements to run: as written on one node, rendered by cluster_ddl on a cluster."""
        try:
            return [out for statement in self.statements() for out in cluster_ddl.render(statement, cluster, database)]
        except cluster_ddl.ClusterDDLError as exc:
            raise MigrationError(f"migration {self.version:04d}_{self.name}: {exc}") from exc


def split_statements(sql: str) -> list[str]:
    """Split a migration on semicolons that end a line; comments are dropped."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [part.strip() for part in parts if part.strip()]


def bundled_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("syncwatch.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def applied_versions(store: Store) -> set[int]:
    # Read-only: /readyz asks this on every probe, and on a cluster creating the ledger is a
    # distributed DDL task that waits for every node. migrate() creates it.
    if not store.query("EXISTS TABLE schema_migrations")[0][0]:
        return set()
    return {row[0] for row in store.query("SELECT version FROM schema_migrations FINAL")}


def pending(store: Store, migrations: list[Migration] | None = None) -> list[Migration]:
    done = applied_versions(store)
    return [m for m in migrations or bundled_migrations() if m.version not in done]


def migrate(store: Store, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration in order; returns those applied."""
    store.command(cluster_ddl.render_ledger(LEDGER_DDL, store.cluster))
    todo = pending(store, migrations)
    # Render everything first: a statement with no cluster form stops the run before anything changed.
    rendered = [(migration, migration.rendered(store.cluster, store.database)) for migration in todo]
    for migration, statements in rendered:
        for statement in statements:
            try:
                store.command(statement)
            except StoreError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                ) from exc
        store.insert_rows(
            "schema_migrations",
            [(migration.version, migration.name, migration.checksum)],
            ["version", "name", "checksum"],
        )
    return todo


def is_current(store: Store) -> bool:
    return not pending(store)


def apply_ddl(store: Store, statement: str) -> None:
    """Run a DDL or maintenance statement issued at run time (OPTIMIZE, TRUNCATE, DROP, ALTER ... UPDATE),
    written against the plain table names: on a cluster it reaches the local tables ON CLUSTER."""
    for rendered in cluster_ddl.render(statement, store.cluster, store.database):
        store.command(rendered)
