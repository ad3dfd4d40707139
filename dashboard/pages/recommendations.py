"""Recommendations: customer look-up (class, RFM, purchases, recommendations with reasons) and
the run's association rules per cluster in a sortable, filterable table."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import components, context, frames, ids
from engine.store import customers

dash.register_page(__name__, path="/recommendations", name="Recommendations",
                   title="Segmint · Recommendations", order=4)

ALL_RULES = "all"
GLOBAL_RULES = "global"
SUGGESTIONS = "recs-lookup-suggestions"


def layout(customer: str | None = None, **_kwargs: Any) -> html.Div:
    header = components.page_header("Recommendations",
                                    "One customer at a time, and the basket rules behind them")
    run = frames.published_run()
    if run is None:
        return html.Div([header, components.empty_state(components.NO_RUN_MESSAGE)])
    run_id = int(run["id"])
    suggestions = context.cached("lookup-suggestions", run_id, compute=lambda: (
        customers.sample_customers(engine=context.engine(), run_id=run_id)))
    example = suggestions[0] if suggestions else "12345"
    lookup = components.card([
        dbc.InputGroup([
            dcc.Input(id=ids.LOOKUP_INPUT, type="text", value=customer or "",
                      placeholder=f"customer id, e.g. {example}",
                      list=SUGGESTIONS, className="form-control", debounce=True),
            dbc.Button("Look up", id=ids.LOOKUP_BUTTON, color="primary"),
        ], className="mb-3"),
        html.Datalist(id=SUGGESTIONS, children=[html.Option(value=c) for c in suggestions]),
        html.Div(_lookup(run_id, customer) if customer else html.P(
            "Type a customer id (suggestions are the run's highest-value customers).",
            className="text-muted"), id=ids.LOOKUP_RESULT),
    ], "Customer look-up")
    return html.Div([
        header,
        components.scope_note(f"Run #{run_id} (as of {run.get('as_of')}): recommendations never "
                              "repeat what the customer already bought."),
        lookup,
        context.cached("rules-card", run_id, compute=lambda: _rules_card(run_id)),
    ])


@callback(Output(ids.LOOKUP_RESULT, "children"), Input(ids.LOOKUP_BUTTON, "n_clicks"),
          Input(ids.LOOKUP_INPUT, "value"), prevent_initial_call=True)
def look_up(_clicks: int | None, customer: str | None) -> Any:
    run = frames.published_run()
    if run is None or not customer or not customer.strip():
        raise PreventUpdate
    run_id, customer_id = int(run["id"]), customer.strip()
    # Consent, opt-out and the phone's status change between runs (webhooks, the sender), so
    # they are part of the key: a STOP shows at the next look-up.
    contact = customers.customer_contact(engine=context.engine(), customer_id=customer_id)
    return context.cached("lookup", run_id, customer_id, contact,
                          compute=lambda: _lookup(run_id, customer_id))


def _consent_text(profile: dict[str, Any]) -> str:
    if profile.get("opt_out"):
        return f"no: opted out ({profile['opt_out']})"
    return "yes" if profile.get("sms_consent") else "no"


def _phone_text(profile: dict[str, Any]) -> str:
    phone = profile.get("phone") or "–"
    return f"{phone} (invalid)" if profile.get("phone") and \
        profile.get("phone_status") == "invalid" else phone


def _lookup(run_id: int, customer_id: str) -> Any:
    engine = context.engine()
    profile = customers.customer_profile(engine=engine, customer_id=customer_id, run_id=run_id)
    if profile is None:
        return dbc.Alert(f"No customer {customer_id!r} in the data.", color="warning",
                         id="lookup-missing")
    facts = [("Class", profile.get("customer_class", "not in this run")),
             ("Cluster", _cluster_text(profile)),
             ("RFM", f"{profile['rfm_code']} · {profile['rfm_segment']}"
              if "rfm_code" in profile else "–"),
             ("Recency", f"{profile['recency_days']} days" if "recency_days" in profile else "–"),
             ("Frequency", f"{profile['frequency']} orders" if "frequency" in profile else "–"),
             ("Monetary", components.money(profile["monetary"]) if "monetary" in profile
              else "–"),
             ("Country", profile.get("country") or "–"),
             ("Phone", _phone_text(profile)),
             ("SMS consent", _consent_text(profile))]
    summary = dbc.Row([dbc.Col([html.Div(label, className="small text-muted"),
                                html.Div(str(value), className="fw-semibold")],
                               md=4, lg=True, className="mb-2") for label, value in facts],
                      className="customer-facts")
    recommendations = customers.customer_recommendations(engine=engine, run_id=run_id,
                                                          customer_id=customer_id)
    purchases = customers.customer_purchases(engine=engine, customer_id=customer_id)
    recommendations["score"] = recommendations["score"].astype(float).round(3)
    purchases["ts"] = pd.to_datetime(purchases["ts"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    recs: Any = (components.grid("lookup-recommendations", recommendations, height=330)
                 if not recommendations.empty else
                 html.P("No recommendations for this customer in this run.",
                        className="text-muted"))
    return html.Div([
        html.H5(f"Customer {customer_id}" + (f" · {profile['first_name']}"
                                             if profile.get("first_name") else ""),
                id="lookup-title"),
        summary,
        html.H6("Recommendations", className="mt-2"),
        recs,
        html.H6("Latest purchases", className="mt-3"),
        components.grid("lookup-purchases", purchases, height=330,
                        money_columns=("amount", "unit_price")),
    ])


def _cluster_text(profile: dict[str, Any]) -> str:
    if "cluster" not in profile:
        return "–"
    return f"{profile['cluster']} ({profile['value_tier']})"


def _rules_card(run_id: int) -> dbc.Card:
    rules = frames.rules(run_id)
    if rules.empty:
        return components.card(html.P(
            "This run has no association rules (too few baskets per cluster, no stock codes, or "
            "thresholds in [baskets] too strict).", className="text-muted"), "Association rules")
    clusters = sorted(int(c) for c in rules["cluster"].dropna().unique())
    options: list[dcc.Dropdown.Options] = [{"label": "All rules", "value": ALL_RULES}]
    if rules["cluster"].isna().any():
        options.append({"label": "Mined over all customers", "value": GLOBAL_RULES})
    options += [{"label": f"Cluster {c}", "value": str(c)} for c in clusters]
    picker = dcc.Dropdown(id=ids.RULES_CLUSTER, options=options, value=ALL_RULES,
                          clearable=False, style={"width": "320px"}, className="mb-2")
    table = components.grid(ids.RULES_TABLE, _rules_rows(rules, ALL_RULES), height=480)
    return components.card([picker, html.Div(id="rules-run", children=str(run_id), hidden=True),
                            table], "Association rules per cluster")


def _rules_rows(rules: pd.DataFrame, choice: str) -> pd.DataFrame:
    if choice == GLOBAL_RULES:
        rules = rules[rules["cluster"].isna()]
    elif choice != ALL_RULES:
        rules = rules[rules["cluster"] == int(choice)]
    shown = rules.copy()
    shown["cluster"] = shown["cluster"].map(lambda c: "all" if pd.isna(c) else str(int(c)))
    for column in ("support", "confidence", "lift", "leverage", "conviction", "zhangs_metric"):
        shown[column] = shown[column].astype(float).round(4)
    return shown


@callback(Output(ids.RULES_TABLE, "rowData"), Input(ids.RULES_CLUSTER, "value"),
          State("rules-run", "children"), prevent_initial_call=True)
def pick_rules(choice: str | None, run_id: str | None) -> Any:
    if choice is None or run_id is None:
        raise PreventUpdate
    return context.cached("rules-rows", int(run_id), choice, compute=lambda: (
        components.json_records(_rules_rows(frames.rules(int(run_id)), choice))))
