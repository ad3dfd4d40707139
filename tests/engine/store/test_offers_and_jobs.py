"""The Offers page's summary (engine.store.offer_results) and the job history
(engine.store.jobs)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.store import jobs, offer_results


def test_offers_and_jobs(filled: Any) -> None:
    summary = offer_results.offer_summary(engine=filled)
    assert summary["total"] == 4 and summary["dry_run"] == 1
    assert summary["delivered"] == 1 and summary["failed"] == 1
    # A 'retry' row (Twilio unreachable, a later pass sends it) is waiting, not yet attempted.
    assert summary["retry"] == 1 and summary["attempted"] == 2
    assert summary["delivery_rate"] == pytest.approx(0.5)
    assert summary["opted_out"] == 1
    history = jobs.job_history(engine=filled)
    assert list(history["status"]) == ["failed", "succeeded"]
    assert history["error"].iloc[0] == "run 3 failed: boom"

