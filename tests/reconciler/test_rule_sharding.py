"""Reconciler replicas: the shares partition the pack, the scheduler schedules only its share, the
settings refuse an index outside the replicas, and the run lease lets one process run a rule at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler import run_lease, scheduler, service
from reconciler.loader import load_rules
from reconciler.rule_shards import Share, stable_hash
from reconciler.run_lease import RunLease
from syncwatch.errors import SyncwatchError
from syncwatch.settings import Settings
from syncwatch.store import Store
from tests.conftest import REPO

PACK = service.runnable(load_rules(REPO / "rules"))
NAMES = [r.name for r in PACK] + [f"rule_{i}" for i in range(500)]
RULE = next(r for r in PACK if r.name == "psa_vs_erp_projects")


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 5])
def test_shares_partition_the_pack_exactly(replicas: int) -> None:
    shares = [Share(i, replicas) for i in range(replicas)]
    owners = Counter(name for share in shares for name in NAMES if share.owns(name))
    assert owners == Counter(NAMES), "every rule in exactly one share"
    sizes = [len([n for n in NAMES if s.owns(n)]) for s in shares]
    assert min(sizes) > len(NAMES) / replicas / 2, f"shares far from even: {sizes}"
    assert sorted(r.name for s in shares for r in s.of(PACK)) == sorted(r.name for r in PACK)


def test_the_hash_is_the_same_in_every_process() -> None:
    assert stable_hash("psa_vs_erp_projects") == 863828486556069316  # changing it reshuffles running replicas
    code = ("from reconciler.rule_shards import Share; import sys; "
            "print(','.join(n for n in sys.argv[1:] if Share(1, 3).owns(n)))")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code, *NAMES[:50]], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out.split(",") == [n for n in NAMES[:50] if Share(1, 3).owns(n)]


@pytest.mark.parametrize("replicas", [1, 3])
def test_the_scheduler_schedules_only_its_share(store: Store, replicas: int) -> None:
    scheduled: list[str] = []
    for index in range(replicas):
        jobs = service.scheduled_jobs(store, PACK, share=Share(index, replicas))
        ids = {job.id for job in scheduler.build_scheduler(jobs).get_jobs()}
        assert ids == {r.name for r in PACK if stable_hash(r.name) % replicas == index}
        scheduled += ids
    assert sorted(scheduled) == sorted(r.name for r in PACK)
    assert {j.name for j in service.scheduled_jobs(store, PACK)} == {r.name for r in PACK}  # default: everything


def test_settings_take_the_documented_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("SYNCWATCH_RECONCILER_REPLICAS", "3")
    monkeypatch.setenv("SYNCWATCH_RECONCILER_INDEX", "2")
    monkeypatch.setenv("SYNCWATCH_CLICKHOUSE_CLUSTER", "syncwatch")
    monkeypatch.setenv("SYNCWATCH_CLICKHOUSE_URL", "http://clickhouse:8123")
    settings = Settings(data_dir=tmp_path)
    assert Share.from_settings(settings) == Share(2, 3) and settings.clickhouse_cluster == "syncwatch"


@pytest.mark.parametrize(("replicas", "index"), [(3, 3), (1, 1), (2, -1)])
def test_an_index_outside_the_replicas_names_both(replicas: int, index: int) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(reconciler_replicas=replicas, reconciler_index=index)
    message = str(caught.value)
    assert f"reconciler_index {index}" in message and f"reconciler_replicas is {replicas}" in message
    with pytest.raises(SyncwatchError, match=f"reconciler_replicas is {replicas}"):
        Share(index, replicas)


def test_no_replicas_is_an_error() -> None:
    with pytest.raises(ValidationError, match="reconciler_replicas is 0: it must be at least 1"):
        Settings(reconciler_replicas=0)


def test_the_index_defaults_to_the_statefulset_ordinal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "syncwatch-reconciler-2")
    assert Share.from_settings(Settings(reconciler_replicas=3)) == Share(2, 3)
    assert Share.from_settings(Settings()) == Share(0, 1), "one replica: the ordinal does not matter"
    monkeypatch.setenv("HOSTNAME", "syncwatch-collector-7")  # collectors read the same settings and must load
    settings = Settings(reconciler_replicas=3)
    with pytest.raises(SyncwatchError, match=r"reconciler_index 7 \(from HOSTNAME 'syncwatch-collector-7'\).*"
                                             r"reconciler_replicas is 3"):
        Share.from_settings(settings)
    monkeypatch.setenv("HOSTNAME", "laptop")
    assert Share.from_settings(Settings(reconciler_replicas=2)) == Share(0, 2)


def contend(leases: list[RunLease], rule: str, hold: float = 0.0) -> list[run_lease.Claim]:
    """Every lease claims ``rule`` at the same moment; each keeps its claim ``hold`` seconds."""
    start, claims = threading.Barrier(len(leases)), [None] * len(leases)

    def one(i: int) -> None:
        start.wait()
        with leases[i].claim(rule) as claim:
            claims[i] = claim
            time.sleep(hold)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(leases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return claims  # type: ignore[return-value]


def test_of_simultaneous_claims_exactly_one_wins(store: Store) -> None:
    leases = [RunLease(store, f"host-{i}", settle=1.0, ttl=30) for i in range(3)]
    claims = contend(leases, "r1", hold=0.5)
    winners = [c for c in claims if c.won]
    assert len(winners) == 1, [c.reason for c in claims]
    holder = leases[claims.index(winners[0])].holder
    assert all(f"is being run by {holder}" in c.reason for c in claims if not c.won)
    with leases[0].claim("r1") as again:  # every claim was released on the way out
        assert again.won, again.reason


def test_a_live_claim_blocks_and_an_expired_one_does_not(store: Store) -> None:
    first, second = RunLease(store, "first", settle=0.5, ttl=30), RunLease(store, "second", settle=0.5, ttl=30)
    with first.claim("r2") as held:
        assert held.won
        with second.claim("r2") as blocked:
            assert not blocked.won and "is being run by first" in blocked.reason
    # A holder that died: its claim is never released, only expires.
    store.command("INSERT INTO rule_leases (rule, claim_id, holder, expires_at, released, version) "
                  "SELECT 'r2', 'dead', 'dead-host', now64(6) - INTERVAL 1 SECOND, 0, 1")
    with second.claim("r2") as taken:
        assert taken.won, taken.reason


def test_a_long_run_renews_its_claim(store: Store) -> None:
    short = RunLease(store, "long-run", settle=0.1, ttl=0.9)  # renewed every 0.3 s
    other = RunLease(store, "other", settle=0.1, ttl=0.9)
    with short.claim("r3") as held:
        assert held.won
        time.sleep(1.5)  # past the first expiry: only renewals keep it
        with other.claim("r3") as late:
            assert not late.won and "long-run" in late.reason


class SlowInserts(Store):
    """Fault injection: every INSERT takes `delay` seconds longer before it is stored."""

    delay = 0.0

    def command(self, sql: str, parameters: Any = None) -> Any:
        if sql.startswith("INSERT"):
            time.sleep(self.delay)
        return super().command(sql, parameters)


def test_a_claim_stored_too_slowly_yields(chdb_dsn: str, store: Store) -> None:
    slow = SlowInserts(chdb_dsn, store.database)
    slow.delay = 0.3
    try:
        with RunLease(slow, "slow", settle=0.4, ttl=30).claim("r4") as claim:
            assert not claim.won and "too long to be sure" in claim.reason
        with RunLease(store, "fast", settle=0.4, ttl=30).claim("r4") as claim:
            assert claim.won, "the slow claim was released"
    finally:
        slow.close()


def test_two_replicas_with_one_index_run_a_rule_once(store: Store) -> None:
    """A misconfiguration: both processes think they are replica 0 of 1 and fire the same job."""
    jobs = [service.scheduled_jobs(store, [RULE], share=Share(0, 1),
                                   lease=RunLease(store, f"pod-{i}", settle=1.0, ttl=60))[0] for i in range(2)]
    results: list[Any] = []
    start = threading.Barrier(2)

    def fire(job: scheduler.ScheduledJob) -> None:
        start.wait()
        results.append(job.run())

    threads = [threading.Thread(target=fire, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ran = [r for r in results if r.ok]
    assert len(ran) == 1 and ran[0].run_id, [r.error for r in results]
    skipped = [r for r in results if not r.ok]
    assert len(skipped) == 1 and skipped[0].error.startswith("not run: rule 'psa_vs_erp_projects' is being run by pod-")
    assert store.query("SELECT count() FROM rule_runs WHERE rule = 'psa_vs_erp_projects'") == [(1,)]


def test_the_embedded_store_needs_no_lease(store: Store) -> None:
    assert run_lease.lease_for(store) is None
    with pytest.raises(ValueError, match="must exceed three settle times"):
        RunLease(store, "x", settle=1.0, ttl=2.0)
