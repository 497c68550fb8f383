"""Findings scored against the simulator's ground truth, per fault type (pure: no store, no I/O).

`expected` (pack_truth.expected) maps each finding the pack must make to the faults behind it.
Per fault type t:

- recall: of the findings faults of type t imply, the share the pack made;
- precision: of the findings the pack made on objects that faults of type t touched, the share
  that a fault implies (a finding on such an object that no fault explains is a false positive
  charged to t; one on an object no fault touched counts against the overall precision only);
- detected: faults of type t all of whose implied findings were made;
- left nothing: faults that imply no finding, grouped by the checked reason (pack_truth.unseen),
  or "unexplained" when there is none: the truth model, not the pack, is then wrong.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from syncwatch.bench.delivered import Delivered
from syncwatch.bench.pack_truth import UNCOVERED, Finding, Object, touched, unseen
from syncwatch.simulator.faults import FAULT_TYPES, Fault

UNEXPLAINED = "unexplained: should have left a finding (the truth model is wrong)"
LISTED = 20  # false positives and misses listed by name in the report; the rest are counted


@dataclass
class TypeScore:
    fault: str
    covered: bool
    injected: int = 0
    must_find: int = 0  # faults that imply at least one finding
    detected: int = 0  # of those, the ones all of whose findings were made
    expected_findings: int = 0
    found_expected: int = 0
    found_on_touched: int = 0
    left_nothing: dict[str, int] = field(default_factory=dict)  # reason -> faults

    @property
    def recall(self) -> float | None:
        return self.found_expected / self.expected_findings if self.expected_findings else None

    @property
    def precision(self) -> float | None:
        return self.found_expected / self.found_on_touched if self.found_on_touched else None


@dataclass
class Score:
    types: list[TypeScore]
    expected: int
    found: int
    true_positives: int
    missed: list[Finding]
    extra: list[Finding]  # found, but no fault implies them
    uncovered: dict[str, str]  # fault type -> why no rule covers it
    unexplained: list[str]  # faults that imply no finding and have no reason why

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.found if self.found else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.expected if self.expected else None

    @property
    def exact(self) -> bool:
        """Found equals expected as sets, and every fault either implies a finding or says why not."""
        return not self.missed and not self.extra and not self.unexplained

    def as_dict(self) -> dict[str, Any]:
        return {
            "exact": self.exact, "expected": self.expected, "found": self.found,
            "true_positives": self.true_positives, "precision": self.precision, "recall": self.recall,
            "missed": [_show(f) for f in self.missed[:LISTED]], "missed_count": len(self.missed),
            "extra": [_show(f) for f in self.extra[:LISTED]], "extra_count": len(self.extra),
            "uncovered": self.uncovered, "unexplained": self.unexplained[:LISTED],
            "types": [{**asdict(t), "precision": t.precision, "recall": t.recall} for t in self.types],
        }


def finding_object(finding: Finding) -> Object:
    """The (rule, object) a finding is about, as pack_truth.touched names objects."""
    rule, _, _, keys = finding
    values = dict(keys)
    if rule == "billing_leakage":
        return rule, (values["project_id"], values["period"])
    (value,) = values.values()
    return rule, value


def score(faults: list[Fault], d: Delivered, expected: dict[Finding, list[Fault]], found: set[Finding]) -> Score:
    """Score `found` against `expected` (pack_truth.expected over `faults`), per fault type."""
    behind: dict[int, set[Finding]] = {}  # id(fault) -> the findings it implies (Fault holds dicts: unhashable)
    for finding, causes in expected.items():
        for f in causes:
            behind.setdefault(id(f), set()).add(finding)
    by_object: dict[Object, set[Finding]] = {}
    for finding in found:
        by_object.setdefault(finding_object(finding), set()).add(finding)
    types = {t: TypeScore(t, t not in UNCOVERED) for t in FAULT_TYPES}
    reasons: dict[str, Counter[str]] = {t: Counter() for t in FAULT_TYPES}
    implied: dict[str, set[Finding]] = {t: set() for t in FAULT_TYPES}
    near: dict[str, set[Finding]] = {t: set() for t in FAULT_TYPES}
    unexplained: list[str] = []
    for f in faults:
        row, mine = types[f.fault], behind.get(id(f), set())
        row.injected += 1
        implied[f.fault] |= mine
        near[f.fault] |= {x for obj in touched(f, d) for x in by_object.get(obj, ())}
        if mine:
            row.must_find += 1
            row.detected += mine <= found
        else:
            reason = unseen(f, d)
            reasons[f.fault][reason or UNEXPLAINED] += 1
            if reason is None:
                unexplained.append(f"{f.fault} on {f.day}: {f.keys} {f.detail}")
    for t, row in types.items():
        row.expected_findings, row.found_expected = len(implied[t]), len(implied[t] & found)
        row.found_on_touched = len(near[t] | (implied[t] & found))
        row.left_nothing = dict(sorted(reasons[t].items()))
    want = set(expected)
    return Score(list(types.values()), len(want), len(found), len(want & found), sorted(want - found),
                 sorted(found - want), dict(UNCOVERED), unexplained)


def _show(finding: Finding) -> str:
    rule, kind, name, keys = finding
    return f"{rule} {kind} {name or '-'} " + ", ".join(f"{k}={v}" for k, v in keys)
