"""Arrow tables as downloadable CSV or Parquet, in chunks for a StreamingResponse.

Every export query returns flat columns (maps as JSON text, arrays joined), because CSV has no
nested types and one schema for both formats keeps the files interchangeable.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

Format = Literal["csv", "parquet"]
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
CHUNK_BYTES = 1 << 20
CSV_BATCH_ROWS = 10_000


def csv_chunks(table: pa.Table) -> Iterator[bytes]:
    """RFC 4180 CSV with a header row, one chunk per batch of rows."""
    batches = table.to_batches(max_chunksize=CSV_BATCH_ROWS)
    if not batches:  # still a file with its header row
        batches = [pa.RecordBatch.from_pylist([], schema=table.schema)]
    for i, batch in enumerate(batches):
        buffer = io.BytesIO()
        pa_csv.write_csv(batch, buffer, pa_csv.WriteOptions(include_header=i == 0))
        yield buffer.getvalue()


def parquet_chunks(table: pa.Table) -> Iterator[bytes]:
    # Parquet's footer points back at every column chunk, so the file is written whole (compressed,
    # far smaller than the Arrow table already in memory) and then sent in slices.
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue()
    for start in range(0, max(data.size, 1), CHUNK_BYTES):
        yield data[start:start + CHUNK_BYTES].to_pybytes()


def chunks(table: pa.Table, fmt: Format) -> Iterator[bytes]:
    return csv_chunks(table) if fmt == "csv" else parquet_chunks(table)


def filename(what: str, fmt: Format, now: datetime) -> str:
    return f"syncwatch-{what}-{now.strftime('%Y%m%dT%H%M%SZ')}.{fmt}"
