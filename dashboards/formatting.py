"""How values read on a page: units, money, ages and times (pure functions).

>>> kpi_value(0.9312, "ratio"), kpi_value(37.25, "hours"), kpi_change(-48.0, "hours", 196.0), money(1234567.5, "EUR")
('93.1 %', '37.2 h', '-2.0 d', 'EUR 1,234,568')
>>> age(90061), kpi_change(0.012, "ratio")
('1 d 1 h', '+1.2 pts')
"""

from __future__ import annotations

from datetime import UTC, datetime


def _hours(value: float, days: bool, sign: str = "") -> str:
    return f"{value / 24:{sign},.1f} d" if days else f"{value:{sign},.1f} h"


def kpi_value(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    if unit == "hours":
        return _hours(value, value >= 72)
    return f"{value:,.2f} {unit}".strip()


def kpi_change(change: float | None, unit: str, value: float | None = None) -> str | None:
    """A tile's period-over-period change in the unit its value is shown in (points for ratios)."""
    if change is None:
        return None
    if unit == "ratio":
        return f"{change * 100:+.1f} pts"
    if unit == "hours":
        return _hours(change, value is not None and value >= 72, "+")
    return f"{change:+,.2f} {unit}".strip()


def scale(unit: str) -> tuple[float, str]:
    """Factor and axis title to chart a unit in (ratios as percentages)."""
    return (100.0, "%") if unit == "ratio" else (1.0, unit)


def money(amount: float, currency: str) -> str:
    return f"{currency} {amount:,.0f}".strip()


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min"


def instant(value: str | datetime | None) -> str:
    """An API timestamp as 'YYYY-MM-DD HH:MM UTC' (empty for none)."""
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def keys_text(keys: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(keys.items()))
