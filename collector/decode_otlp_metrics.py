"""otel_metrics rows from an ExportMetricsServiceRequest (either encoding, see decode_otlp_rows).

One row per data point of every metric type; MetricType ('gauge', 'sum', 'histogram',
'exponential_histogram', 'summary') says which columns apply. Columns that do not apply to a
type hold 0 or []; optional values a point does not carry (a histogram's sum, min, max) are NaN.
Exponential histograms are stored as the equivalent explicit-bounds buckets (see
`exponential_buckets`). Exemplars are not stored.

A metric without a name or without data is refused whole; a data point is refused when a time is
out of range, a number point has no value (unless flagged NO_RECORDED_VALUE) or a histogram's
bucket counts do not match its bounds. Refused items are counted in data points and quarantined.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pyarrow as pa
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from collector.decode_otlp_rows import MAX_NS, TOO_LATE, Dialect, MapColumn, Rejects, Resource, ScopeColumns, camel
from collector.decoded import DecodeContext, Decoded
from syncwatch.model import METRICS, METRICS_SCHEMA, NS, STR

NAN = float("nan")
NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
TEMPORALITY_BY_NAME: dict[str, int] = dict(AggregationTemporality.items())
METRIC_TYPES = ("gauge", "sum", "histogram", "exponential_histogram", "summary")  # the oneof's field names
NO_DATA = f"has no data; set one of {', '.join(camel(t) for t in METRIC_TYPES)}"


class Point(NamedTuple):
    """The measured values of one data point; defaults fill the columns that do not apply."""

    value: float = 0.0
    count: int = 0
    sum: float = 0.0
    min: float = 0.0
    max: float = 0.0
    buckets: list[int] = []
    bounds: list[float] = []
    quantile_values: list[float] = []
    quantiles: list[float] = []


def metric_rows(request: Any, d: Dialect, ctx: DecodeContext) -> Decoded:
    """otel_metrics rows of an ExportMetricsServiceRequest; invalid metrics/points go to quarantine."""
    cols, rejects = MetricColumns(d), Rejects("metric", d.render)
    for i, rm in enumerate(request.resource_metrics):
        res = Resource.read(d, rm.resource)
        for j, sm in enumerate(rm.scope_metrics):
            scope = sm.scope
            values = {"ServiceName": res.service, "ScopeName": scope.name, "ScopeVersion": scope.version}
            cols.scopes.open(values, {"ResourceAttributes": (res.keys, res.values)})
            where = f"resourceMetrics[{i}].scopeMetrics[{j}].metrics"
            kept = sum(cols.add(m, f"{where}[{k}]", rejects, res.service) for k, m in enumerate(sm.metrics))
            cols.scopes.close(kept)
    decoded = Decoded(accepted=len(cols.times))
    decoded.add(METRICS, cols.table())
    return rejects.apply(decoded, ctx)


def exponential_buckets(
    scale: int, zero_count: int, positive: tuple[int, list[int]], negative: tuple[int, list[int]]
) -> tuple[list[int], list[float]]:
    """An exponential histogram's buckets as explicit-bounds buckets, in ascending order.

    Positive bucket i covers (base**i, base**(i+1)] with base = 2**(2**-scale), negative bucket i
    the mirror image (https://opentelemetry.io/docs/specs/otel/metrics/data-model/#exponentialhistogram).
    Counts are the negative buckets from the most negative, the zero bucket, then the positive
    buckets; bounds are the edges between neighbours, so len(bounds) == len(counts) - 1.

    >>> exponential_buckets(0, 1, (0, [2, 3]), (1, [4]))
    ([4, 1, 2, 3], [-2.0, 1.0, 2.0])
    """
    (pos_offset, pos), (neg_offset, neg) = positive, negative
    counts = [*reversed(neg), zero_count, *pos]
    bounds = [-_power(neg_offset + i, scale) for i in reversed(range(len(neg)))]
    bounds += [_power(pos_offset + i, scale) for i in range(len(pos))]
    return counts, bounds


def _power(index: int, scale: int) -> float:
    try:
        return 2.0 ** math.ldexp(index, -scale)
    except OverflowError:
        return math.inf


def _optional(p: Any, name: str, d: Dialect) -> float:
    return getattr(p, name) if d.has(p, name) else NAN


def _number(p: Any, d: Dialect) -> Point | str:
    which = d.which(p, "value")
    if which is None:
        if p.flags & NO_RECORDED_VALUE:
            return Point(value=NAN)
        return "has neither asDouble nor asInt (set one, or flag the point NO_RECORDED_VALUE)"
    return Point(value=float(getattr(p, which)))


def _histogram(p: Any, d: Dialect) -> Point | str:
    buckets, bounds = list(p.bucket_counts), list(p.explicit_bounds)
    if buckets and len(buckets) != len(bounds) + 1:
        return f"has {len(buckets)} bucketCounts for {len(bounds)} explicitBounds; it needs one more count than bounds"
    return Point(
        count=p.count,
        sum=_optional(p, "sum", d),
        min=_optional(p, "min", d),
        max=_optional(p, "max", d),
        buckets=buckets,
        bounds=bounds,
    )


def _exponential(p: Any, d: Dialect) -> Point | str:
    positive = (p.positive.offset, list(p.positive.bucket_counts))
    negative = (p.negative.offset, list(p.negative.bucket_counts))
    buckets, bounds = exponential_buckets(p.scale, p.zero_count, positive, negative)
    return Point(
        count=p.count,
        sum=_optional(p, "sum", d),
        min=_optional(p, "min", d),
        max=_optional(p, "max", d),
        buckets=buckets,
        bounds=bounds,
    )


def _summary(p: Any, d: Dialect) -> Point | str:
    values = p.quantile_values
    return Point(
        count=p.count, sum=p.sum, quantiles=[q.quantile for q in values], quantile_values=[q.value for q in values]
    )


READERS = {
    "gauge": _number,
    "sum": _number,
    "histogram": _histogram,
    "exponential_histogram": _exponential,
    "summary": _summary,
}


class MetricColumns:
    """Every otel_metrics column of the accepted data points of one request."""

    def __init__(self, d: Dialect) -> None:
        self.d = d
        self.scopes = ScopeColumns(("ServiceName", "ScopeName", "ScopeVersion"), ("ResourceAttributes",))
        self.times: list[int] = []
        self.starts: list[int] = []
        self.metric: dict[str, list[Any]] = {name: [] for name in _METRIC_FIELDS}
        self.flags: list[int] = []
        self.attrs = MapColumn()
        self.points: list[Point] = []

    def add(self, metric: Any, where: str, rejects: Rejects, service: str) -> int:
        """Append the valid data points of one metric; returns how many were kept."""
        which = self.d.which(metric, "data")
        data = getattr(metric, which) if which else None
        if data is None or not metric.name:
            reason = "has no name" if not metric.name else NO_DATA
            points = len(data.data_points) if data is not None else 0
            rejects.add(where, metric, reason, (service, metric.name, which or ""), n=max(points, 1))
            return 0
        facts = _metric_facts(metric, which, data)
        read, kept = READERS[which], 0
        for k, p in enumerate(data.data_points):
            point = read(p, self.d) if p.time_unix_nano <= MAX_NS and p.start_time_unix_nano <= MAX_NS else None
            if point is None or isinstance(point, str):
                reason = point or f"timeUnixNano/startTimeUnixNano {TOO_LATE}"
                rejects.add(f"{where}.{camel(which)}.dataPoints[{k}]", p, reason, (service, metric.name, which))
                continue
            self.append(facts, p, point)
            kept += 1
        return kept

    def append(self, facts: tuple[Any, ...], p: Any, point: Point) -> None:
        for name, fact in zip(_METRIC_FIELDS, facts, strict=True):
            self.metric[name].append(fact)
        self.times.append(p.time_unix_nano)
        self.starts.append(p.start_time_unix_nano)
        self.flags.append(p.flags)
        self.attrs.add_attrs(self.d, p.attributes)
        self.points.append(point)

    def table(self) -> pa.Table:
        value, count, sum_, min_, max_, buckets, bounds, qvalues, quantiles = (
            zip(*self.points, strict=True) if self.points else [()] * len(Point._fields)
        )
        columns = {
            "TimeUnix": pa.array(self.times, NS),
            "StartTimeUnix": pa.array(self.starts, NS),
            **{name: pa.array(values, _METRIC_FIELDS[name]) for name, values in self.metric.items()},
            "Attributes": self.attrs.array(),
            "Value": pa.array(value, pa.float64()),
            "Count": pa.array(count, pa.uint64()),
            "Sum": pa.array(sum_, pa.float64()),
            "Min": pa.array(min_, pa.float64()),
            "Max": pa.array(max_, pa.float64()),
            "BucketCounts": pa.array(buckets, pa.list_(pa.uint64())),
            "ExplicitBounds": pa.array(bounds, pa.list_(pa.float64())),
            "QuantileValues": pa.array(qvalues, pa.list_(pa.float64())),
            "Quantiles": pa.array(quantiles, pa.list_(pa.float64())),
            "Flags": pa.array(self.flags, pa.uint32()),
            **self.scopes.arrays(),
        }
        return pa.Table.from_arrays([columns[f.name] for f in METRICS_SCHEMA], schema=METRICS_SCHEMA)


_METRIC_FIELDS: dict[str, pa.DataType] = {
    "MetricName": STR,
    "MetricType": STR,
    "MetricDescription": STR,
    "MetricUnit": STR,
    "IsMonotonic": pa.bool_(),
    "AggregationTemporality": pa.int32(),
}


def _metric_facts(metric: Any, which: str, data: Any) -> tuple[Any, ...]:
    """The values of _METRIC_FIELDS, the same for every data point of `metric`."""
    temporality = getattr(data, "aggregation_temporality", 0)  # gauges and summaries have none
    if temporality.__class__ is str:
        temporality = TEMPORALITY_BY_NAME.get(temporality, 0)
    monotonic = bool(getattr(data, "is_monotonic", False))
    return (metric.name, which, metric.description, metric.unit, monotonic, temporality)
