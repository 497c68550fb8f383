"""The narrow first pass of a record-level reconcile: which keys can have a problem at all.

Joining two systems' full records (every field, trace ids) row by row is what made 10M x 10M
records slow and memory-hungry: the sort-merge join carried ~100 bytes per row per side. Instead:

1. each side is reduced to (key, one 64-bit digest of the compared fields in their canonical
   form: normalized text, the value map applied on the left, parsed numbers and dates) and the
   two are joined; a key is a *candidate* when one side lacks it or the digests differ. Equal
   digests mean every compared field is equal after normalization, so no tolerance can make them
   a mismatch (a digest collision, 2^-64 per pair, is the only way to miss one). The join streams
   on the stored key where it can (first_pass_ctes);
2. both sides' full rows are read once more, only for the candidate keys, and grouped per
   normalized key into the `l.*` / `r.*` columns the problem expressions of compile_reconcile use.

A key that several records of one side normalize to (`p-1` and `P-1 `) is compared through its
most recently updated record.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.model import Compare, ReconcileRule, Side, Tolerance
from reconciler.sql import Params, field_of, key_expr, side_filters, span_hex, trace_hex

_PARSE = {
    "decimal": "toDecimal128OrNull({}, 6)",
    "int": "toInt64OrNull({})",
    "date": "toDate32(parseDateTime64BestEffortOrNull({}, 0, 'UTC'))",
    "datetime": "parseDateTime64BestEffortOrNull({}, 6, 'UTC')",
}


# an optional minus, digits, an optional fraction: text both toFloat64 and toDecimal128 read
PLAIN_DECIMAL = r"^-?[0-9]+(\.[0-9]*)?$"
PLAIN_DECIMAL_LENGTH = 14  # so at most 14 significant digits: see _canonical


def parse(type_: str, value: str) -> str:
    return _PARSE[type_].format(value)


def normalize_text(value: str, case_insensitive: bool, ignore_whitespace: bool) -> str:
    """Text as compared: runs of whitespace made one space and trimmed, then lower-cased."""
    if ignore_whitespace:
        # splitByWhitespace splits on the ASCII whitespace [[:space:]] names and drops empty pieces:
        # a fifth of the cost of a regular expression, and no pass over the text to decide on one
        value = f"arrayStringConcat(splitByWhitespace({value}), ' ')"
    if case_insensitive:
        value = f"lowerUTF8({value})"
    return value


def same_source(rule: ReconcileRule) -> bool:
    """Both sides read the same system and entity (told apart by filters): rows can be on both."""
    return (rule.left.system, rule.left.entity) == (rule.right.system, rule.right.entity)


def _normalize_py(value: str, t: Tolerance | None) -> str:
    if t and t.ignore_whitespace:
        value = " ".join(value.split())
    return value.lower() if t and t.case_insensitive else value


def compared_text(p: Params, c: Compare, value: str, which: str) -> str:
    """A text field as compared: normalized per its tolerance; the left side's codes translated
    through the value map (an unmapped code is compared as it is)."""
    t = c.tolerance
    text = normalize_text(value, bool(t and t.case_insensitive), bool(t and t.ignore_whitespace))
    if which == "l" and c.value_map:
        keys = [_normalize_py(k, t) for k in c.value_map]
        values = [_normalize_py(v, t) for v in c.value_map.values()]
        text = f"transform({text}, {p(keys, 'Array(String)')}, {p(values, 'Array(String)')}, {text})"
    return text


def _canonical(p: Params, c: Compare, which: str) -> list[str]:
    """Expressions whose equality on both sides means the field does not differ at any tolerance."""
    value = field_of(p, "fields", c.field if which == "l" else c.other)
    if c.type in ("string", "enum"):
        return [compared_text(p, c, value, which)]
    parsed = parse(c.type, value)
    # unparsable values are compared as text, so the text joins the digest when parsing fails
    exact = [f"isNull({parsed})", f"assumeNotNull({parsed})", f"if(isNull({parsed}), {value}, '')"]
    if c.type != "decimal":
        return exact
    # A Decimal128 parse is most of a decimal field's digest cost (~0.2 s per 10M records). Two
    # different decimals of at most 14 significant digits differ by at least 1e-14 of their size,
    # dozens of Float64 steps (15 digits always survive a double, DBL_DIG), so equal floats mean
    # equal values even from a parser that is off by a step or two. Plain literals of at most 14
    # characters take the float, at a third of the cost; any other text takes the exact parse
    # (if() evaluates that branch only for its rows). A value written two ways (1.5 and
    # 1.500000000000000) may now differ in digest: a candidate the second pass clears, never a
    # missed difference.
    plain = f"(length({value}) <= {PLAIN_DECIMAL_LENGTH} AND match({value}, {p(PLAIN_DECIMAL)}))"
    zeros = ["0", "toDecimal128(0, 6)", "''"]
    return [plain, f"if({plain}, toFloat64OrZero({value}), 0.)",
            *(f"if({plain}, {zero}, {part})" for zero, part in zip(zeros, exact, strict=True))]


def _prewhere(p: Params, side: Side) -> str:
    # Only sorting-key columns go to PREWHERE: with FINAL it runs before versions are merged,
    # which is right for columns every version of a key shares and wrong for any other.
    return f"system = {p(side.system)} AND entity = {p(side.entity)}"


# Keys that normalization changes are sent to the second pass as they are, up to this many; past
# it, the first pass sorts every normalized key instead (see first_pass_ctes).
ABNORMAL_KEYS_LIMIT = 500_000


def _digest(p: Params, rule: ReconcileRule, which: str, *lead: str) -> str:
    parts = [*lead, *(part for c in rule.compare for part in _canonical(p, c, which))]
    return f"cityHash64({', '.join(parts)})" if parts else "toUInt64(0)"


def _sorted_side(p: Params, rule: ReconcileRule, which: str, key: str, *where: str) -> str:
    """Each key's latest live record on one side, for a join that sorts its inputs."""
    side = rule.left if which == "l" else rule.right
    conditions = " AND ".join(["deleted = 0", *side_filters(p, side), *where])
    return (f"d{which} AS (\n        SELECT {key} AS k, {_digest(p, rule, which)} AS d, 1 AS present\n"
            f"        FROM records FINAL\n        PREWHERE {_prewhere(p, side)}\n        WHERE {conditions}\n    )")


def _streamed_side(p: Params, rule: ReconcileRule, which: str, *where: str) -> str:
    """Every version of every record on one side, keyed by `key` as stored, in the table's order.

    FINAL would merge versions, but merging the parts of a table in order ran ~2.5x slower than
    reading them (10M x 10M with one small part of new versions: 4.7 s against 2.2 s for this
    pass). So versions stay apart, and a version that is deleted or fails the side's filters only
    changes the digest (the leading flag): a key whose latest versions differ then meets at least
    one differing pair in the join, and extra pairs only add candidates the second pass clears.
    """
    side = rule.left if which == "l" else rule.right
    # A filter on a field the record lacks or cannot parse is NULL, which WHERE takes as false; so
    # must the flag, or the digest of a filtered-out record would be NULL and equal nothing, hiding it.
    live = f"ifNull({' AND '.join(['deleted = 0', *side_filters(p, side)])}, 0)"
    conditions = " AND ".join(["key != ''", *where])
    return (f"n{which} AS (\n        SELECT key AS k, {_digest(p, rule, which, live)} AS d, 1 AS present\n"
            f"        FROM records\n        PREWHERE {_prewhere(p, side)}\n        WHERE {conditions}\n    )")


def _join(left: str, right: str) -> str:
    """The keys one side lacks or whose digests differ."""
    return (f"SELECT if({left}.present, {left}.k, {right}.k) AS k FROM {left} FULL OUTER JOIN {right} "
            f"ON {left}.k = {right}.k\n        WHERE NOT ({left}.present AND {right}.present) OR {left}.d != {right}.d")


def first_pass_ctes(p: Params, rule: ReconcileRule) -> list[str]:
    """The `candidates` CTE (one normalized key per row; repeats allowed) and what it reads.

    A join on the `key` column itself streams: both sides are read in the table's order, so the
    sort-merge join needs no sort and holds almost nothing (the sorted join of normalized keys held
    ~0.6 GiB at 10M x 10M). So rows whose key normalization leaves unchanged are joined on `key`,
    and the normalized keys of the other rows (`p-1 ` next to `P-1`) become candidates outright:
    the second pass compares every record of a candidate key, whatever its raw key. When more than
    ABNORMAL_KEYS_LIMIT keys change under normalization (say a rule upper-cases keys one system
    keeps in lower case), a scalar guard switches to sorting normalized keys instead; ClickHouse
    evaluates the guard first and does not read the branch it turns off.
    """
    if rule.left.key_field or rule.right.key_field:  # keys from a field: no order to stream in
        ctes = [_sorted_side(p, rule, w, key_expr(p, side, rule), "k != ''")
                for w, side in (("l", rule.left), ("r", rule.right))]
        return [*ctes, f"candidates AS (\n        {_join('dl', 'dr')}\n    )"]
    if not rule.key_normalize:
        ctes = [_streamed_side(p, rule, w) for w in "lr"]
        return [*ctes, f"candidates AS (\n        {_join('nl', 'nr')}\n    )"]
    normalized = key_expr(p, rule.left, rule)  # the same expression of `key` on both sides
    few = f"length(abnormal_keys) <= {ABNORMAL_KEYS_LIMIT}"
    sides = f"({_prewhere(p, rule.left)} OR {_prewhere(p, rule.right)})"
    abnormal = (
        f"(SELECT groupArray(k) FROM (\n        SELECT {normalized} AS k FROM records PREWHERE {sides}\n"
        f"        WHERE key != k AND k != '' LIMIT {ABNORMAL_KEYS_LIMIT + 1})) AS abnormal_keys"
    )
    streamed = [_streamed_side(p, rule, w, f"key = {normalized}", few) for w in "lr"]
    sorted_ = [_sorted_side(p, rule, w, normalized, "k != ''", f"NOT {few}") for w in "lr"]
    candidates = (
        f"candidates AS (\n        {_join('nl', 'nr')}\n        UNION ALL\n"
        f"        SELECT arrayJoin(if({few}, abnormal_keys, [])) AS k\n        UNION ALL\n"
        f"        {_join('dl', 'dr')}\n    )"
    )
    return [abnormal, *streamed, *sorted_, candidates]


def referenced_fields(rule: ReconcileRule) -> list[str]:
    """The record fields the problem expressions of compile_reconcile read from `l.f` / `r.f`: the
    compared fields and the impact's amount and currency fields."""
    names = [name for c in rule.compare for name in (c.field, c.other)]
    if rule.impact:
        names += [rule.impact.field, rule.impact.right_field, rule.impact.currency_field]
    return list(dict.fromkeys(name for name in names if name))


def pairs_ctes(p: Params, rule: ReconcileRule) -> list[str]:
    """One scan of both sides for the candidate keys, grouped into one row per key."""
    left, right = rule.left, rule.right
    is_left = f"({_prewhere(p, left)})"
    lwhere = " AND ".join(side_filters(p, left)) or "1"
    rwhere = " AND ".join(side_filters(p, right)) or "1"
    # Sets of 64-bit hashes are probed faster than sets of strings; a key whose hash collides with a
    # candidate's is compared in full like one, so a collision costs time, never a wrong finding.
    wanted = "cityHash64(k) IN (SELECT cityHash64(k) FROM candidates)"
    # a key made from `key` alone is the same in every version, so it may filter before FINAL
    # merges versions and spare reading the other columns of rows that are not candidates
    by_key = left.key_field is None and right.key_field is None
    key_only, key_later = (f" AND {wanted}", "") if by_key else ("", f" AND {wanted}")
    rows = (
        "candidate_rows AS (\n"
        f"        SELECT {is_left} AS is_l, if(is_l, {key_expr(p, left, rule)}, {key_expr(p, right, rule)}) AS k,\n"
        f"               fields, {rule.grace_basis} AS ts, ids\n"
        "        FROM records FINAL\n"
        f"        PREWHERE ({is_left} OR ({_prewhere(p, right)})){key_only}\n"
        f"        WHERE deleted = 0 AND if(is_l, {lwhere}, {rwhere}) AND k != ''{key_later}\n    )"
    )
    return [rows, pairs_cte(p, rule, lambda name: field_of(p, "fields", name))]


def pairs_cte(p: Params, rule: ReconcileRule, value_of: Callable[[str], str]) -> str:
    """`pairs`: the rows of `candidate_rows` (is_l, k, ts, ids, and what `value_of(field name)` reads)
    grouped into one row per key of the `l.*` / `r.*` columns, each side's latest record by ts."""
    columns = ["k AS `l.k`", "k AS `r.k`"]
    for which, cond in (("l", "is_l"), ("r", "NOT is_l")):
        # The latest record's fields are kept as strings, one argMax each, and made a map again:
        # argMax of a whole Map goes through a generic, several times slower, aggregate state.
        latest = ", ".join(f"{p(name)}, argMaxIf({value_of(name)}, ts, {cond})" for name in referenced_fields(rule))
        columns += [
            f"countIf({cond}) > 0 AS `{which}.present`",
            f"map({latest}) AS `{which}.f`",
            f"maxIf(ts, {cond}) AS `{which}.ts`",
            f"argMaxIf(ids, ts, {cond}) AS {which}_ids",
            f"{trace_hex(f'{which}_ids')} AS `{which}.trace_id`",
            f"{span_hex(f'{which}_ids')} AS `{which}.span_id`",
        ]
    return ("pairs AS (\n        SELECT " + ",\n               ".join(columns)
            + "\n        FROM candidate_rows\n        GROUP BY k\n    )")
