"""Records keep their trace and span ids as 24 bytes, not 48 hex characters (migration 0011).

Writers, the spool and every reader keep the hex text: the collector's Arrow batches carry
`trace_id` and `span_id`, and the table gives them back as ALIAS columns of the same names. Only
the insert changes, here: the two hex columns become one `ids` column of 16 + 8 raw bytes, zeros
where a record came without a traceparent.

Why: hex ids were 47 of the 100 bytes a record takes on disk, and they do not compress. The
reconcile's second pass reads them for every granule that holds a candidate key, which at 10M x 10M
records is every granule: 1.14 CPU-s of decompression against 0.13 for the raw bytes.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from syncwatch.model import RECORDS

TRACE_HEX, SPAN_HEX = 32, 16
IDS = pa.binary((TRACE_HEX + SPAN_HEX) // 2)
_NO_TRACE, _NO_SPAN = "0" * TRACE_HEX, "0" * SPAN_HEX


class RecordIdError(ValueError):
    """A record's trace or span id is not the W3C hex the collector writes."""


def ids_of(trace_id: str | None, span_id: str | None) -> bytes:
    """One record's stored ids (none for empty or None); RecordIdError names what is wrong with them."""
    trace, span = trace_id or _NO_TRACE, span_id or _NO_SPAN
    text = trace + span
    if len(trace) != TRACE_HEX or len(span) != SPAN_HEX:
        raise RecordIdError(f"record trace/span ids must be {TRACE_HEX} and {SPAN_HEX} hex digits or empty, "
                            f"got {trace_id!r} and {span_id!r}")
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise RecordIdError(f"record trace/span ids must be hexadecimal, got {trace_id!r} and {span_id!r}") from None


def _ids_column(trace: pa.ChunkedArray, span: pa.ChunkedArray) -> pa.Array:
    """The `ids` column of a batch, decoded in one call over the joined hex text of all rows."""
    trace, span = pc.fill_null(trace, ""), pc.fill_null(span, "")  # a null joins as nothing: no ids
    text = pc.binary_join_element_wise(pc.if_else(pc.equal(trace, ""), _NO_TRACE, trace),
                                       pc.if_else(pc.equal(span, ""), _NO_SPAN, span), "").combine_chunks()
    width, start = TRACE_HEX + SPAN_HEX, _first_offset(text)
    try:
        if pc.any(pc.not_equal(pc.binary_length(text), width)).as_py():
            raise ValueError("not all ids have their length")
        raw = binascii.unhexlify(memoryview(text.buffers()[2])[start:start + width * len(text)]) if len(text) else b""
    except (binascii.Error, ValueError):
        for t, s in zip(trace.to_pylist(), span.to_pylist(), strict=True):
            ids_of(t, s)  # the first row that is wrong raises, naming its values
        raise
    return pa.FixedSizeBinaryArray.from_buffers(IDS, len(text), [None, pa.py_buffer(raw)])


def _first_offset(text: pa.Array) -> int:
    """Where the first value of a (possibly sliced) string array starts in its data buffer."""
    if not len(text):
        return 0
    kind = pa.int64() if pa.types.is_large_string(text.type) else pa.int32()
    return pa.Array.from_buffers(kind, 1, [None, text.buffers()[1]], offset=text.offset)[0].as_py()


def stored_table(table: str, data: pa.Table) -> pa.Table:
    """`data` in the layout `table` stores: records' hex ids become `ids`; other tables unchanged."""
    if table != RECORDS or "trace_id" not in data.column_names:
        return data
    ids = _ids_column(data.column("trace_id"), data.column("span_id"))
    at = data.column_names.index("trace_id")
    return data.drop_columns(["trace_id", "span_id"]).add_column(at, "ids", ids)


def stored_rows(table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]
                ) -> tuple[list[Sequence[Any]], list[str]]:
    """Rows and column names in the layout `table` stores (see stored_table)."""
    columns = list(columns)
    if table != RECORDS or "trace_id" not in columns:
        return list(rows), columns
    t, s = columns.index("trace_id"), columns.index("span_id")
    keep = [i for i in range(len(columns)) if i not in (t, s)]
    out = [[row[i] for i in keep] + [ids_of(row[t], row[s])] for row in rows]
    return out, [columns[i] for i in keep] + ["ids"]
