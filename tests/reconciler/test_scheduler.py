"""Scheduler wiring: triggers and misfire settings per rule, and real runs on the real store."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler import runner, scheduler
from reconciler.scheduler import ScheduledJob, ScheduleError
from syncwatch.store import Store


@pytest.mark.parametrize(("schedule", "seconds"), [
    (30, 30), (0.5, 0.5), ("45", 45), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400),
    (timedelta(minutes=10), 600),
])
def test_intervals(schedule: scheduler.Schedule, seconds: float) -> None:
    trigger = scheduler.trigger_for(schedule)
    assert isinstance(trigger, IntervalTrigger) and trigger.interval.total_seconds() == seconds


def test_cron_strings_are_crontab_fields_in_utc() -> None:
    trigger = scheduler.trigger_for("*/15 6-18 * * mon-fri")
    assert isinstance(trigger, CronTrigger) and str(trigger.timezone) == "UTC"
    fields = {f.name: str(f) for f in trigger.fields}
    assert (fields["minute"], fields["hour"], fields["day_of_week"]) == ("*/15", "6-18", "mon-fri")


@pytest.mark.parametrize("schedule", ["every now and then", "61 * * * *", 0, "-5m"])
def test_bad_schedules_say_what_is_expected(schedule: scheduler.Schedule) -> None:
    with pytest.raises(ScheduleError, match="schedule"):
        scheduler.trigger_for(schedule)


def test_one_job_per_rule_with_a_generous_misfire_grace_and_no_overlap() -> None:
    jobs = [ScheduledJob("psa_erp_projects", "5m", lambda: None), ScheduledJob("leakage", "0 2 * * *", lambda: None)]
    sched = scheduler.build_scheduler(jobs)
    registered = {job.id: job for job in sched.get_jobs()}
    assert set(registered) == {"psa_erp_projects", "leakage"}
    assert isinstance(registered["psa_erp_projects"].trigger, IntervalTrigger)
    assert isinstance(registered["leakage"].trigger, CronTrigger)
    for job in registered.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, scheduler.MISFIRE_GRACE_SECONDS)
    assert scheduler.MISFIRE_GRACE_SECONDS >= 600  # never APScheduler's silent 1 s default


def test_a_short_interval_job_runs_rules_on_the_real_store(store: Store) -> None:
    store.command("CREATE TABLE missing (id String) ENGINE = MergeTree ORDER BY id")
    store.insert_rows("missing", [("P-1",)], ["id"])
    sql = ("SELECT 'missing_right' AS kind, '' AS field, map('project_id', id) AS keys, ['psa'] AS systems, "
           "'' AS left_value, '' AS right_value, 0 AS impact_amount, '' AS impact_currency, '' AS left_trace_id, "
           "'' AS left_span_id, '' AS right_trace_id, '' AS right_span_id, '' AS detail FROM missing")
    done = threading.Event()

    def job() -> None:
        runner.run_rule(store, "projects", "1", "high", (sql, {}), True)
        if len(runner.recent_runs(store, "projects")) >= 2:
            done.set()

    sched = scheduler.start([ScheduledJob("projects", 0.3, job)])
    try:
        assert done.wait(timeout=5), "the scheduled rule did not run twice within 5 s"
    finally:
        scheduler.stop(sched)
    assert not sched.running
    count = len(runner.recent_runs(store, "projects"))
    time.sleep(0.5)  # stopped: no further runs
    assert len(runner.recent_runs(store, "projects")) == count
    assert store.query("SELECT status, count() FROM findings FINAL GROUP BY status") == [("open", 1)]
