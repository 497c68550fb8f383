"""Fault knobs and the ground truth: every fault the feed injects, with its systems and business keys.

Each knob is the probability that one eligible step goes wrong (a sync for lost, delayed and
failed calls; a sent event for duplicates, reordering and schema breaks; an invoice posting for
amount mismatches; ...). `GroundTruth.roll` counts every draw per fault type in `eligible`, so
`len(truth.of(kind)) / truth.eligible[kind]` estimates the knob: that is what the tests check,
and what a reconciler's recall is measured against.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

LOST_MESSAGE = "lost_message"  # a sync never delivers an event or record update to its target
DUPLICATE = "duplicate"  # an event is sent again with the same id
REORDERED = "reordered"  # an event is held back and delivered after later ones
DELAYED_SYNC = "delayed_sync"  # a sync reaches its target days late
AMOUNT_MISMATCH = "amount_mismatch"  # the ERP posts an invoice amount that differs from billing
COST_RATE_MISMATCH = "cost_rate_mismatch"  # the PSA gets a different cost rate than the HRIS has
WRONG_LEGAL_ENTITY = "wrong_legal_entity"  # the ERP books a project on another legal entity than the PSA
UNBILLED_TIMESHEET = "unbilled_timesheet"  # an approved billable timesheet is never invoiced
FAILED_CALL = "failed_call"  # a sync's write call fails (error spans), is retried, maybe given up
SCHEMA_BREAK = "schema_break"  # an event's data violates its type's schema (quarantined on ingest)

EVENT_FAULTS = (DUPLICATE, REORDERED, SCHEMA_BREAK)  # drawn for each sent event, at most one
SYNC_FAULTS = (LOST_MESSAGE, FAILED_CALL, DELAYED_SYNC)  # drawn for each integration run, at most one
FAULT_TYPES = (LOST_MESSAGE, DUPLICATE, REORDERED, DELAYED_SYNC, AMOUNT_MISMATCH, COST_RATE_MISMATCH,
               WRONG_LEGAL_ENTITY, UNBILLED_TIMESHEET, FAILED_CALL, SCHEMA_BREAK)


@dataclass(frozen=True)
class FaultKnobs:
    """Probability per eligible step of each fault type (0 = never, 1 = always)."""

    lost_message: float = 0.0
    duplicate: float = 0.0
    reordered: float = 0.0
    delayed_sync: float = 0.0
    amount_mismatch: float = 0.0
    cost_rate_mismatch: float = 0.0
    wrong_legal_entity: float = 0.0
    unbilled_timesheet: float = 0.0
    failed_call: float = 0.0
    schema_break: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault knob {f.name}={value!r} must be a probability between 0 and 1")

    @classmethod
    def uniform(cls, rate: float) -> FaultKnobs:
        """About `rate` of each kind of step goes wrong (the feed's `fault_rate`).

        A step gets at most one fault, so the fault types that compete for one kind of step share
        the rate: each sent event is a duplicate, reordered or schema-breaking with rate/3 each, each
        sync run is lost, failed or delayed with rate/3 each; the other types own their step.
        """
        shared = {kind: rate / 3 for kind in EVENT_FAULTS + SYNC_FAULTS}
        return cls(**{kind: shared.get(kind, rate) for kind in FAULT_TYPES})

    def get(self, kind: str) -> float:
        return float(getattr(self, kind))


@dataclass(frozen=True)
class Fault:
    """One injected fault: what, when (simulated day), which systems, which business objects."""

    fault: str
    day: str
    systems: tuple[str, ...]
    keys: dict[str, str]
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        row = asdict(self)
        row["systems"] = list(self.systems)
        return json.dumps(row, sort_keys=True, separators=(",", ":"))


class GroundTruth:
    """Draws fault decisions from its own seeded random stream and logs the faults injected.

    With `until`, no fault is drawn once `today` (kept by the feed) reaches that day. With `keep`
    False, faults go to the listeners only (a bulk run of tens of millions of events logs them to a
    file and need not hold them).
    """

    def __init__(self, knobs: FaultKnobs, seed: int, until: date | None = None) -> None:
        self.knobs = knobs
        self.until = until
        self.today: date | None = None
        self.rng = random.Random(f"syncwatch-faults-{seed}")  # independent of the firm's stream
        self.faults: list[Fault] = []
        self.eligible: Counter[str] = Counter()
        self.listeners: list[Callable[[Fault], None]] = []
        self.keep = True

    def roll(self, kind: str) -> bool:
        """Whether this eligible step gets fault `kind`; counted in `eligible` either way (a step after
        `until` is not eligible)."""
        if self.until is not None and self.today is not None and self.today >= self.until:
            return False
        self.eligible[kind] += 1
        p = self.knobs.get(kind)
        return p > 0 and self.rng.random() < p

    def record(self, kind: str, day: object, systems: tuple[str, ...], keys: dict[str, str], **detail: Any) -> Fault:
        fault = Fault(kind, str(day), systems, dict(keys), detail)
        if self.keep:
            self.faults.append(fault)
        for listener in self.listeners:
            listener(fault)
        return fault

    def of(self, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.fault == kind]

    def counts(self) -> Counter[str]:
        return Counter(f.fault for f in self.faults)


class JsonlLog:
    """Appends each fault to a JSON Lines file as it happens, so a running demo's truth is readable."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")

    def __call__(self, fault: Fault) -> None:
        self._file.write(fault.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_ground_truth(path: Path | str) -> list[Fault]:
    faults = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        faults.append(Fault(row["fault"], row["day"], tuple(row["systems"]), row["keys"], row["detail"]))
    return faults


# -- schema-breaking payloads -----------------------------------------------------------------------

def break_payload(data: dict[str, Any], required: str, rng: random.Random) -> tuple[dict[str, Any], str]:
    """A copy of `data` that no sane schema of its type accepts, and how it was broken.

    `required` names a field every schema of the type must require (its business key). Either it
    is dropped, or it becomes an object, as a mis-mapped integration would send it; a numeric
    field, if any, may instead become a formatted string ("1,234.50").
    """
    broken = dict(data)
    numbers = [k for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    how = rng.choice(("missing", "nested", "number_as_text") if numbers else ("missing", "nested"))
    if how == "missing":
        del broken[required]
        return broken, f"missing {required}"
    if how == "nested":
        broken[required] = {"id": data[required]}
        return broken, f"{required} sent as an object"
    name = rng.choice(numbers)
    broken[name] = f"{data[name]:,.2f}"
    broken.pop(required, None)  # a formatted number alone may pass a lax schema; drop the key too
    return broken, f"{name} sent as text and {required} missing"
