"""Runs decided by the service: incremental from the last success, full when one is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler import service
from reconciler.loader import load_rules
from syncwatch.store import Store
from tests.conftest import REPO
from tests.reconciler.records import Records

RULE = next(r for r in load_rules(REPO / "rules") if r.name == "psa_vs_erp_projects")


def test_runs_are_incremental_between_full_runs(store: Store) -> None:
    assert service.run_one(store, RULE).full  # no watermark yet
    assert not service.run_one(store, RULE).full
    assert service.run_one(store, RULE, full=True).full


def test_a_full_run_is_forced_when_the_last_one_is_old(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert service.run_one(store, RULE).full
    monkeypatch.setattr(service, "FULL_RUN_EVERY", timedelta(0))
    assert service.run_one(store, RULE).full, "grace expiries are only caught by full runs"


@pytest.mark.parametrize("received_before", [timedelta(seconds=30), timedelta(hours=3)],
                         ids=["by-the-writer", "by-a-spool-replay"])
def test_an_incremental_run_sees_rows_stored_after_the_last_run_began(store: Store, received_before: timedelta) -> None:
    """received_at is when the collector took a row; the writer stores it a little later, and a spool
    replay after the store was down far later. A row received before a run began but stored after it
    must still reach the next incremental run, however long before the run it was received."""
    first = service.run_one(store, RULE)
    assert first.full and first.error == ""
    received = first.started_at - received_before
    updated = datetime.now(UTC) - timedelta(days=1)  # past the rule's 4h grace period
    Records().add("psa", "project", "LATE", {"status": "active", "budget": "100", "legal_entity": "ACME-DE"},
                  at=updated, received=received, stored=datetime.now(UTC)) \
        .add("erp", "project", "LATE", {"status": "closed", "budget": "100", "legal_entity": "ACME-DE"},
             at=updated, received=received, stored=datetime.now(UTC)).write(store)
    second = service.run_one(store, RULE)
    assert not second.full and second.error == ""
    assert second.opened == 1
    assert store.query("SELECT field FROM findings FINAL WHERE rule = {r:String} AND keys['project_id'] = 'LATE'",
                       {"r": RULE.name}) == [("status",)]
