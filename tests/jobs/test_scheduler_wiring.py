"""How settings become triggers (no scheduler started)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.settings import JobSpec, load_settings
from jobs.scheduler import SchedulerConfigError, crontab_weekdays, make_trigger, plan_jobs


def settings_from(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text(text)
    return load_settings(config, environ={})


# Day numbers as cron counts them: 0 = Sunday ... 6 = Saturday (7 is Sunday again).
SUNDAY, MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY = range(7)
EVERY_DAY = set(range(7))
CRON_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def firing_days(day_of_week: str) -> set[int]:
    """The cron day numbers on which the planned pipeline job fires, over two real weeks."""
    trigger = make_trigger(JobSpec(cron=f"30 4 * * {day_of_week}"), key="pipeline",
                           timezone=ZoneInfo("UTC"))[0]
    start = datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC"))  # a Monday
    days, fire = set(), trigger.get_next_fire_time(None, start)
    while fire is not None and fire < start + timedelta(days=14):
        days.add(fire.isoweekday() % 7)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return days


@pytest.mark.parametrize(("field", "days"), [
    ("*", EVERY_DAY), ("0", {SUNDAY}), ("7", {SUNDAY}), ("sun", {SUNDAY}),
    ("0-7", EVERY_DAY), ("0-6", EVERY_DAY), ("1-7", EVERY_DAY), ("sun-sat", EVERY_DAY),
    ("sun-tue", {SUNDAY, MONDAY, TUESDAY}), ("SUN-Tue", {SUNDAY, MONDAY, TUESDAY}),
    ("mon-fri", {MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY}),
    ("1-5", {MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY}),
    ("5-7", {FRIDAY, SATURDAY, SUNDAY}), ("thu-sat", {THURSDAY, FRIDAY, SATURDAY}),
    ("*/2", {SUNDAY, TUESDAY, THURSDAY, SATURDAY}), ("0-7/2", {SUNDAY, TUESDAY, THURSDAY,
                                                              SATURDAY}),
    ("mon-fri/2", {MONDAY, WEDNESDAY, FRIDAY}), ("1/2", {MONDAY, WEDNESDAY, FRIDAY, SUNDAY}),
    ("*/7", {SUNDAY}), ("1,3", {MONDAY, WEDNESDAY}), ("sat,0", {SATURDAY, SUNDAY}),
    ("sun,7", {SUNDAY}), ("mon,sun-tue", {SUNDAY, MONDAY, TUESDAY}),
    # Not standard cron, kept because it reads naturally: a backwards range wraps the week.
    ("5-1", {FRIDAY, SATURDAY, SUNDAY, MONDAY}), ("fri-mon", {FRIDAY, SATURDAY, SUNDAY, MONDAY}),
])
def test_day_of_week_fires_on_the_days_cron_means(field: str, days: set[int]) -> None:
    assert firing_days(field) == days


def cron_meaning(field: str) -> set[int]:
    """crontab(5): the day numbers 0-7 a standard field selects, Sunday being 0 and 7."""
    selected: set[int] = set()
    for token in field.split(","):
        span, _, step = token.partition("/")
        if span == "*":
            low, high = 0, 7
        elif "-" in span:
            low, high = (CRON_NAMES.index(v) if v in CRON_NAMES else int(v)
                         for v in span.split("-"))
        else:
            low = CRON_NAMES.index(span) if span in CRON_NAMES else int(span)
            high = 7 if step else low
        selected.update(range(low, high + 1, int(step or 1)))
    return {7 if day == 0 else day for day in selected} | ({0} if 7 in selected else set())


def _cron_day(draw: st.DrawFn, low: int = 0) -> tuple[int, str]:
    number = draw(st.integers(low, 7))
    as_name = number < 7 and draw(st.booleans())
    return number, CRON_NAMES[number] if as_name else str(number)


@st.composite
def cron_token(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["star", "day", "range"]))
    step = draw(st.one_of(st.none(), st.integers(1, 8)))
    if kind == "star":
        return "*" if step is None else f"*/{step}"
    first, first_text = _cron_day(draw)
    if kind == "day":
        return first_text if step is None else f"{first_text}/{step}"
    _, last_text = _cron_day(draw, low=first)
    return f"{first_text}-{last_text}" + ("" if step is None else f"/{step}")


@given(st.lists(cron_token(), min_size=1, max_size=4).map(",".join))
@hypothesis_settings(max_examples=300, deadline=None)
def test_day_of_week_matches_cron_for_any_standard_field(field: str) -> None:
    expected = {day % 7 for day in cron_meaning(field)}
    assert firing_days(field) == expected, field


@pytest.mark.parametrize("field", ["8", "0-8", "mon-xyz", "*/0", "", "1-", "monday"])
def test_bad_day_of_week_is_a_config_error(field: str) -> None:
    with pytest.raises(ValueError, match="day of week"):
        crontab_weekdays(field)


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
