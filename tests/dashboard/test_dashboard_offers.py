"""The Offers page's 'What the offers brought', built from estimates without a browser."""

from __future__ import annotations

import json

import pandas as pd
import plotly

from engine.offer_outcomes import Outcomes
from engine.outcomes import estimate


def _outcomes() -> Outcomes:
    attributed = pd.DataFrame({
        "offer_id": ["spring"] * 6,
        "customer_class": ["High value"] * 6,
        "group": ["treatment"] * 4 + ["holdout"] * 2,
        "converted": [True, True, True, False, False, False],
        "revenue_after": [10.0, 20.0, 5.0, 0.0, 0.0, 0.0],
        "days_to_convert": [0.5, 2.0, 3.0, None, None, None],
    })
    return Outcomes(attributed=attributed, by_offer=estimate(attributed),
                    by_class=estimate(attributed, by=("offer_id", "customer_class")),
                    attribution_days=14)


def test_each_offer_shows_its_verdict_uplift_and_conversion_curve() -> None:
    from dashboard.offer_outcomes import what_the_offers_brought

    parts = what_the_offers_brought(_outcomes())
    text = json.dumps([part.to_plotly_json() for part in parts], cls=plotly.utils.PlotlyJSONEncoder)
    verdict = _outcomes().by_offer.loc[0, "verdict"]
    assert "What the offers brought" in text and verdict in text
    assert "offers-uplift" in text and "offers-curve-0" in text and "offers-classes-0" in text
    assert "Converted since the send" in text and "Smallest detectable uplift" in text


def test_without_offers_the_section_says_so() -> None:
    from dashboard.offer_outcomes import what_the_offers_brought

    empty = Outcomes(attributed=pd.DataFrame(), by_offer=pd.DataFrame(),
                     by_class=pd.DataFrame(), attribution_days=14)
    text = json.dumps([part.to_plotly_json() for part in what_the_offers_brought(empty)],
                      cls=plotly.utils.PlotlyJSONEncoder)
    assert "Nothing to measure yet" in text
