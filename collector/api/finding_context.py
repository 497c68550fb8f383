"""One finding with everything a person needs to act on it: the rule and what it compares, the
values of both sides next to each other, the actions taken on it (from the audit log) and the notes.

`comparison` and `rule_info` are pure: finding + rule in, API models out. Annotations are audit
entries (action `annotated`), so every note is as tamper-evident as any other action.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from collector.api.findings_query import Finding
from reconciler.audit import AuditEntry
from reconciler.explain import explain
from reconciler.loader import LoadedRule
from reconciler.model import AggregateRule, ReconcileRule, WorkflowRule

ANNOTATED = "annotated"


class RuleInfo(BaseModel):
    name: str
    kind: str
    description: str
    severity: str
    version: str = Field(description="Version of the rule as loaded now.")
    finding_version: str = Field(description="Version of the rule that last detected the finding.")
    version_matches: bool
    explanation: str = Field(description="What the rule compares, in words (as `syncwatch rules explain`).")
    defined_at: str


class SideValue(BaseModel):
    label: str = Field(description="What this side is: a system's entity, a workflow deadline, ...")
    system: str
    value: str
    trace_id: str
    span_id: str


class Comparison(BaseModel):
    field: str
    left: SideValue
    right: SideValue
    detail: str


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    role: str
    action: str
    parameters: dict[str, Any]
    outcome: str
    hash: str


class Annotation(BaseModel):
    at: datetime
    author: str
    role: str
    note: str
    seq: int = Field(description="Its entry in the audit log.")


class FindingDetail(BaseModel):
    finding: Finding
    rule: RuleInfo | None
    rule_problem: str = Field("", description="Why the rule is not shown, when it is not.")
    comparison: Comparison
    audit: list[AuditEntryOut] = Field(description="Every action on this finding, oldest first.")
    annotations: list[Annotation]


def rule_info(loaded: LoadedRule, finding: Finding) -> RuleInfo:
    rule = loaded.rule
    return RuleInfo(name=loaded.name, kind=rule.kind, description=rule.description, severity=rule.severity,
                    version=loaded.version, finding_version=finding.rule_version,
                    version_matches=loaded.version == finding.rule_version, explanation=explain(rule),
                    defined_at=f"{loaded.path}:{loaded.line}")


def _labels(finding: Finding, rule: Any) -> tuple[str, str]:
    if isinstance(rule, ReconcileRule | AggregateRule):
        sides = []
        for side in (rule.left, rule.right):
            measure = f" {side.measure.text()}" if isinstance(rule, AggregateRule) else ""
            sides.append(side.label or f"{side.system} {side.entity}{measure}")
        return sides[0], sides[1]
    if isinstance(rule, WorkflowRule):
        if finding.kind == "stuck":
            return "deadline", "arrived (not yet)"
        if finding.kind == "sla_breach":
            return "deadline", "arrived"
        return "step", "error"
    return "left", "right"


def _systems(finding: Finding, rule: Any) -> tuple[str, str]:
    if isinstance(rule, ReconcileRule | AggregateRule):
        return rule.left.system, rule.right.system
    if isinstance(rule, WorkflowRule):
        return "", ""  # a workflow's values are times, not a system's fields
    left = finding.systems[0] if finding.systems else ""
    return left, finding.systems[1] if len(finding.systems) > 1 else ""


def comparison(finding: Finding, loaded: LoadedRule | None) -> Comparison:
    """The two sides of the finding next to each other, labelled in the rule's terms."""
    rule = loaded.rule if loaded else None
    (left_label, right_label), (left_system, right_system) = _labels(finding, rule), _systems(finding, rule)
    return Comparison(
        field=finding.field,
        left=SideValue(label=left_label, system=left_system, value=finding.left_value,
                       trace_id=finding.left_trace_id, span_id=finding.left_span_id),
        right=SideValue(label=right_label, system=right_system, value=finding.right_value,
                        trace_id=finding.right_trace_id, span_id=finding.right_span_id),
        detail=finding.detail)


def audit_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(seq=entry.seq, at=datetime.fromisoformat(entry.at.replace("Z", "+00:00")),
                         actor=entry.actor, role=entry.role, action=entry.action,
                         parameters=json.loads(entry.parameters or "{}"), outcome=entry.outcome, hash=entry.hash)


def detail(finding: Finding, loaded: LoadedRule | None, rule_problem: str, entries: list[AuditEntry]) -> FindingDetail:
    audit = [audit_out(e) for e in entries]
    notes = [Annotation(at=a.at, author=a.actor, role=a.role, note=str(a.parameters.get("note", "")), seq=a.seq)
             for a in audit if a.action == ANNOTATED and a.outcome == "ok"]
    return FindingDetail(finding=finding, rule=rule_info(loaded, finding) if loaded else None,
                         rule_problem="" if loaded else rule_problem, comparison=comparison(finding, loaded),
                         audit=audit, annotations=notes)
