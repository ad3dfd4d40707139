"""How settings become triggers (no scheduler started)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from engine.settings import load_settings
from jobs.scheduler import SchedulerConfigError, crontab_weekdays, plan_jobs


def settings_from(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text(text)
    return load_settings(config, environ={})


@pytest.mark.parametrize(("field", "names"), [
    ("*", "*"), ("mon-fri", "mon-fri"), ("0", "sun"), ("7", "sun"),
    ("1-5", "mon,tue,wed,thu,fri"), ("5-1", "fri,sat,sun,mon"), ("*/2", "sun,tue,thu,sat"),
    ("1,3", "mon,wed"), ("sat,0", "sat,sun"),
])
def test_crontab_day_numbers_mean_what_cron_means(field: str, names: str) -> None:
    assert crontab_weekdays(field) == names


def test_cron_sunday_is_sunday(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, '[scheduler]\ntimezone = "UTC"\n'
                                       'pipeline = { cron = "30 4 * * 0" }\n')
    trigger = plan_jobs(settings)[0].trigger
    fire = trigger.get_next_fire_time(None, datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC")))
    assert fire == datetime(2024, 1, 7, 4, 30, tzinfo=ZoneInfo("UTC"))  # 2024-01-07: a Sunday


def test_default_plan_uses_config_timezone(tmp_path: Path) -> None:
    jobs = {job.job_id: job for job in plan_jobs(settings_from(tmp_path, ""))}
    assert set(jobs) == {"pipeline", "inbox"}
    assert isinstance(jobs["pipeline"].trigger, CronTrigger)
    assert str(jobs["pipeline"].trigger.timezone) == "Europe/London"
    assert jobs["pipeline"].label == "cron 0 2 * * * Europe/London"
    assert jobs["pipeline"].func == "jobs.tasks:run_pipeline"
    assert isinstance(jobs["inbox"].trigger, IntervalTrigger)


def test_interval_overrides_only_the_pipeline(tmp_path: Path) -> None:
    jobs = {job.job_id: job for job in plan_jobs(settings_from(tmp_path, ""), interval=5)}
    assert jobs["pipeline"].trigger.interval.total_seconds() == 5  # type: ignore[attr-defined]
    assert jobs["inbox"].trigger.interval.total_seconds() == 300  # type: ignore[attr-defined]


def test_disabled_job_is_not_planned(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "[scheduler]\ninbox = { interval_seconds = 60, "
                                       "enabled = false }\n")
    assert [job.job_id for job in plan_jobs(settings)] == ["pipeline"]


@pytest.mark.parametrize(("text", "message"), [
    ('[scheduler]\npipeline = { cron = "0 2 * *" }\n', "scheduler.pipeline.cron"),
    ('[scheduler]\npipeline = { cron = "0 25 * * *" }\n', "scheduler.pipeline.cron"),
    ('[scheduler]\ntimezone = "Mars/Olympus"\n', "scheduler.timezone"),
])
def test_bad_schedule_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SchedulerConfigError, match=message) as caught:
        plan_jobs(settings_from(tmp_path, text))
    assert "\n" not in str(caught.value)
