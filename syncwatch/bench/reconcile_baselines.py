"""Baselines of `syncwatch bench reconcile`, each run in its own process so its peak RSS is its own.

    python -m syncwatch.bench.reconcile_baselines {polars-lazy|datacompy-polars|datacompy-pandas} LEFT RIGHT

LEFT and RIGHT are Parquet exports of the two sides (key, budget, status, legal_entity, currency as
text). Each baseline does the rule's work: join on the key, report keys missing on either side and
fields that differ beyond the rule's tolerances (budget 1% relative; status case-insensitive with
PSA 'lost' = ERP 'cancelled'; legal entity case- and whitespace-insensitive). The datacompy ones do
a little less than the rule and the polars join: they join the raw keys (the rule trims and
upper-cases them) and their `ignore_spaces` strips the ends of a text only (the rule also collapses
the whitespace inside it). The bench's keys are stored normalized and its legal entities differ
only in case and a trailing space, so all of them find the same drift. Timing starts before
the files are read. Prints one JSON line: seconds, peak_rss_bytes (VmHWM) and the drift counts.
This module imports nothing heavy at the top, so a baseline's RSS is the baseline's.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

VALUE_MAP = {"lost": "cancelled"}
RELATIVE = 0.01


def polars_lazy(left: str, right: str) -> dict[str, int]:
    import polars as pl

    def side(path: str) -> pl.LazyFrame:
        return pl.scan_parquet(path).with_columns(
            k=pl.col("key").str.strip_chars().str.to_uppercase(), budget=pl.col("budget").cast(pl.Float64)
        )

    def text(c: str) -> pl.Expr:
        return pl.col(c).str.replace_all(r"\s+", " ").str.strip_chars().str.to_lowercase()

    joined = side(left).join(side(right), on="k", how="full", suffix="_r")
    both = pl.col("k").is_not_null() & pl.col("k_r").is_not_null()
    counts = joined.select(
        missing_right=pl.col("k_r").is_null().sum(),
        missing_left=pl.col("k").is_null().sum(),
        budget=(both & ((pl.col("budget") - pl.col("budget_r")).abs() > pl.col("budget").abs() * RELATIVE)).sum(),
        status=(
            both & (pl.col("status").str.to_lowercase().replace(VALUE_MAP) != pl.col("status_r").str.to_lowercase())
        ).sum(),
        legal_entity=(both & (text("legal_entity") != text("legal_entity_r"))).sum(),
    ).collect()
    return {name: int(counts[name][0]) for name in counts.columns}


def datacompy_polars(left: str, right: str) -> dict[str, int]:
    import datacompy
    import polars as pl

    def side(path: str, mapped: bool) -> pl.DataFrame:
        df = pl.read_parquet(path, columns=["key", "budget", "status", "legal_entity"])
        df = df.with_columns(budget=pl.col("budget").cast(pl.Float64))
        return df.with_columns(status=pl.col("status").replace(VALUE_MAP)) if mapped else df

    compare = datacompy.PolarsCompare(
        side(left, True),
        side(right, False),
        join_columns="key",
        rel_tol={"budget": RELATIVE, "default": 0.0},
        ignore_spaces=True,
        ignore_case=True,
    )
    rows = compare.intersect_rows
    return {
        "missing_right": compare.df1_unq_rows.height,
        "missing_left": compare.df2_unq_rows.height,
        **{c: int((~rows[f"{c}_match"]).sum()) for c in ("budget", "status", "legal_entity")},
    }


def datacompy_pandas(left: str, right: str) -> dict[str, int]:
    import datacompy
    import pandas as pd

    def side(path: str, mapped: bool) -> pd.DataFrame:
        df = pd.read_parquet(path, columns=["key", "budget", "status", "legal_entity"])
        df["budget"] = df["budget"].astype("float64")
        if mapped:
            df["status"] = df["status"].replace(VALUE_MAP)
        return df

    compare = datacompy.PandasCompare(
        side(left, True),
        side(right, False),
        join_columns="key",
        rel_tol={"budget": RELATIVE, "default": 0.0},
        ignore_spaces=True,
        ignore_case=True,
    )
    rows = compare.intersect_rows
    return {
        "missing_right": len(compare.df1_unq_rows),
        "missing_left": len(compare.df2_unq_rows),
        **{c: int((~rows[f"{c}_match"].astype(bool)).sum()) for c in ("budget", "status", "legal_entity")},
    }


BASELINES: dict[str, Callable[[str, str], dict[str, int]]] = {
    "polars-lazy": polars_lazy,
    "datacompy-polars": datacompy_polars,
    "datacompy-pandas": datacompy_pandas,
}


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str]) -> None:
    name, left, right = argv
    began = time.perf_counter()
    counts = BASELINES[name](left, right)
    result: dict[str, Any] = {
        "seconds": time.perf_counter() - began,
        "peak_rss_bytes": peak_rss_bytes(),
        "counts": counts,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
