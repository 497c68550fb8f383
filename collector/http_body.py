"""Reading request bodies with limits: size before and after decompression (bombs), encodings."""

from __future__ import annotations

import zlib

from starlette.requests import ClientDisconnect, Request

from collector.body_deadline import BodyTimeout
from collector.errors import IngestHTTPError

GZIP_WBITS = 16 + zlib.MAX_WBITS
CHUNK = 64 * 1024


def too_large(limit: int, what: str) -> IngestHTTPError:
    return IngestHTTPError(413, "too_large", f"{what} exceeds the limit of {limit} bytes; send smaller batches")


async def read_body(request: Request, limit: int) -> bytes:
    """The decompressed body, refusing anything over `limit` bytes at any stage."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, "request body")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise too_large(limit, "request body")
    except BodyTimeout as exc:
        raise IngestHTTPError(408, "body_timeout", str(exc), {"Connection": "close"}) from exc
    except ClientDisconnect as exc:  # nobody will read the answer; counted, not logged as a failure
        raise IngestHTTPError(400, "client_disconnected", "the client closed the connection before "
                              f"sending its whole body ({size:,} bytes came)") from exc
    # one copy of a body that came in pieces (a batch of 1,000 events is ~0.6 MB), none of one in one
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    return decompress(raw, encoding, limit)


def decompress(raw: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise IngestHTTPError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; "
                              "use gzip, deflate or identity")
    wbits = GZIP_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    pieces: list[bytes] = []
    size, rest = 0, raw
    while True:  # a gzip body may hold several members (`cat a.gz b.gz`); each is part of the body
        inflater = zlib.decompressobj(wbits)
        try:
            # max_length stops a decompression bomb after limit+1 bytes instead of inflating it whole
            piece = inflater.decompress(rest, limit + 1 - size)
            if size + len(piece) > limit or inflater.unconsumed_tail:
                raise too_large(limit, "decompressed request body")
            piece += inflater.flush()
        except zlib.error as exc:
            raise IngestHTTPError(400, "bad_encoding", f"body is not valid {encoding} data: {exc}") from exc
        size += len(piece)
        pieces.append(piece)
        if size > limit:
            raise too_large(limit, "decompressed request body")
        if not inflater.eof:
            raise IngestHTTPError(400, "bad_encoding", f"{encoding} body is truncated")
        rest = inflater.unused_data
        if not rest.strip(b"\0"):  # nothing left, or the zero padding some writers add
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if encoding == "deflate" or not rest.startswith(b"\x1f\x8b"):
            raise IngestHTTPError(400, "bad_encoding", f"{len(rest)} bytes that are not {encoding} data "
                                  f"follow the {encoding} stream")
