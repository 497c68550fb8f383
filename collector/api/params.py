"""Request parameters of the query API: parsing and checking that names the parameter in every error.

The routes call these and let the IngestHTTPError they raise become a 400/404; nothing here touches
the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collector.errors import IngestHTTPError

DEFAULT_RANGE = timedelta(days=30)
# Ranges longer than this make day buckets pointless and the queries slow; ask for a coarser view.
MAX_RANGE = timedelta(days=3 * 366)
_WINDOW = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_WINDOW, MAX_WINDOW = timedelta(minutes=1), timedelta(days=90)
# inside what DateTime64 stores (1900..2299), with room for a previous period before the range
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def bad_parameter(name: str, message: str) -> IngestHTTPError:
    """A 400 whose message starts with the parameter's name, like FastAPI's own validation errors."""
    return IngestHTTPError(400, "invalid_parameter", f"{name}: {message}")


def not_found(what: str, message: str) -> IngestHTTPError:
    return IngestHTTPError(404, "not_found", f"{what}: {message}")


def parse_instant(name: str, text: str | None) -> datetime | None:
    """ISO 8601 (a date, or a time with or without offset; no offset means UTC), or None."""
    if text is None or text == "":
        return None
    # an unencoded '+' of an offset arrives as a space in a query string
    cleaned = text.replace(" ", "+") if "T" in text else text
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise bad_parameter(name, f"{text!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or "
                                  "2026-11-01T00:00:00Z)") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise bad_parameter(name, f"{text!r} is outside {EARLIEST.year}..{LATEST.year - 1}")
    return moment


def as_utc(moment: datetime | None) -> datetime | None:
    """clickhouse-connect returns DateTime('UTC') values naive; the API always answers with an offset."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> TimeRange:
        """The period of equal length just before this one (period-over-period comparisons)."""
        return TimeRange(self.start - self.length, self.start)


def time_range(start: str | None, end: str | None, now: datetime | None = None,
               default: timedelta = DEFAULT_RANGE) -> TimeRange:
    """[start, end): end defaults to now, start to `default` before end."""
    until = parse_instant("end", end) or now or datetime.now(UTC)
    since = parse_instant("start", start) or until - default
    if since >= until:
        raise bad_parameter("start", f"must be before end ({since.isoformat()} is not before {until.isoformat()})")
    if until - since > MAX_RANGE:
        raise bad_parameter("start", f"the range may span at most {MAX_RANGE.days} days")
    return TimeRange(since, until)


def window(text: str) -> timedelta:
    """A duration like 15m, 1h, 24h or 7d, between one minute and 90 days."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise bad_parameter("window", f"{text!r} is not a duration such as 15m, 1h, 24h or 7d")
    length = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not MIN_WINDOW <= length <= MAX_WINDOW:
        raise bad_parameter("window", "must be between 1m and 90d")
    return length
