"""Column contracts: the columns, in order, of each export and of the frames the store hands out.

SPEC.md's export columns are a contract with Tableau / Power BI users: they are written here once
and imported by the engine functions that build the frames, the store that reads and writes them
and the exports that write them. Item sets (a rule's antecedents and consequents) are text in one
format everywhere: stock codes, sorted, joined by ITEM_SEPARATOR.
"""

from __future__ import annotations

from collections.abc import Iterable

SEGMENT_COLUMNS = ["customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score",
                   "m_score", "rfm_code", "rfm_score", "rfm_segment", "cluster", "value_tier",
                   "customer_class"]
RULE_COLUMNS = ["cluster", "antecedents", "consequents", "support", "confidence", "lift",
                "leverage", "conviction", "zhangs_metric"]
RECOMMENDATION_COLUMNS = ["customer_id", "rank", "stock_code", "description", "score", "reason"]
PROFILE_COLUMNS = ["cluster", "value_tier", "persona", "size", "recency_days", "frequency",
                   "monetary", "revenue", "revenue_share", "strategy", "r_level", "f_level",
                   "m_level"]
TRANSITION_COLUMNS = ["from_class", "to_class", "customers"]
CLV_COLUMNS = ["customer_id", "frequency", "recency", "T", "p_alive", "expected_purchases_90d",
               "expected_purchases_365d", "expected_order_value", "clv_365d", "churn_risk"]
# `export kpis` (engine/kpis.py; scheme class, rfm_segment or persona).
KPI_COLUMNS = ["scheme", "segment", "customers", "revenue_share", "aov", "repeat_rate",
               "retention_90d", "median_days_between_orders"]
# `export offers` (engine/outcomes.py; group treatment or holdout, converted and revenue_after
# over the attribution window).
OFFER_EXPORT_COLUMNS = ["customer_id", "offer_id", "pass_id", "group", "status", "decided_at",
                        "converted", "revenue_after"]
# `outcomes --json`, per offer (uplift, its interval and mde in conversion-rate points).
OUTCOME_FIELDS = ["offer_id", "treatment", "holdout", "conversion_treatment",
                  "conversion_holdout", "uplift", "uplift_ci_low", "uplift_ci_high",
                  "revenue_per_customer_treatment", "revenue_per_customer_holdout",
                  "incremental_revenue", "mde"]

# The lines frame every engine function takes (engine.store.lines_read.load_lines).
LINE_COLUMNS = ["invoice", "stock_code", "description", "quantity", "unit_price", "amount", "ts",
                "customer_id", "country", "is_return"]
# What ingest hands to the store: the frame columns plus the line's identity.
STAGED_LINE_COLUMNS = ["line_hash", "line_no", *LINE_COLUMNS]
CUSTOMER_COLUMNS = ["customer_id", "first_name", "phone", "phone_status", "signup_date", "country",
                    "sms_consent", "timezone"]
RUN_COLUMNS = ["id", "status", "started_at", "finished_at", "as_of", "since", "until", "k",
               "k_mode", "seed", "n_customers", "n_lines", "error"]

ITEM_SEPARATOR = ";"


def format_items(value: object) -> str:
    """An item set as text: its stock codes sorted and ';'-joined (text is kept as it is)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return ITEM_SEPARATOR.join(sorted(str(item) for item in value))
    return str(value)


def split_items(text: object) -> list[str]:
    """The stock codes of an item set written by format_items."""
    return str(text).split(ITEM_SEPARATOR)
