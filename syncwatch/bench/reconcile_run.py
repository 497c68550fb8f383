"""One Syncwatch measurement of `bench reconcile`, in a process of its own (like each baseline).

The benchmark's own process generated the data inside its embedded engine, and the memory that
generation leaves behind is not the reconciler's; a reconciler process only runs rules. So the
compiled rule is timed here: `python -m syncwatch.bench.reconcile_run DSN DATABASE NOW REPEAT OUT`
prints one JSON line (each run's seconds, the peak RSS over the runs, the RSS before them) and
writes what the last run found, (kind, field, key), to the Parquet file OUT for the exactness check.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import pyarrow.parquet as pq

from reconciler.compile_reconcile import compile as compile_rule
from reconciler.loader import load_text
from syncwatch.bench import reconcile_data as data
from syncwatch.bench.reconcile import _findings, _timed
from syncwatch.store import Store


def main(argv: list[str]) -> None:
    dsn, database, now, repeat, out = argv
    rule = load_text(data.RULE_YAML, "bench rule").pop().rule
    compiled = compile_rule(rule, now=datetime.fromisoformat(now))
    store = Store(dsn, database)
    try:
        store.query("SELECT 1")  # the engine is up before the memory baseline is read
        table, seconds, rss = _timed(lambda: store.query_arrow(compiled.sql, compiled.parameters), int(repeat))
    finally:
        store.close()
    pq.write_table(_findings(table).to_arrow(), out)
    print(json.dumps({"runs": seconds, "peak_rss_bytes": rss.peak, "rss_before_bytes": rss.before}))


if __name__ == "__main__":
    main(sys.argv[1:])
