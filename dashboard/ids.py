"""Every component id of the dashboard, in one place (pages and callbacks import from here)."""

from __future__ import annotations

# Shell
NAVIGATE = "shell-navigate"            # dcc.Location(refresh="callback-nav") the filter bar writes
PAGES_LOCATION = "_pages_location"     # Dash pages' own Location
NAV_LINKS = "shell-nav-links"

# Analysts' filter bar (absent for managers)
FILTER_BAR = "filter-bar"
FILTER_DATES = "filter-dates"
FILTER_CLASSES = "filter-classes"
FILTER_SEGMENTS = "filter-segments"
# The class and segment pickers (hidden where they do not apply) and the note said instead.
FILTER_GROUP_PICKERS = "filter-group-pickers"
FILTER_GROUP_NOTE = "filter-group-note"
FILTER_APPLY = "filter-apply"
FILTER_RESET = "filter-reset"
FILTER_MESSAGE = "filter-message"      # says which URL parameters were ignored, and why

# Overview
KPI_REVENUE = "kpi-revenue"
KPI_ORDERS = "kpi-orders"
KPI_CUSTOMERS = "kpi-customers"
KPI_AOV = "kpi-aov"
TREND_REVENUE = "trend-revenue"
TREND_ORDERS = "trend-orders"
TREND_ACTIVE = "trend-active-customers"
TREND_NEW = "trend-new-customers"

# Products
TOP_REVENUE = "products-top-revenue"
TOP_QUANTITY = "products-top-quantity"
TOP_CUSTOMERS = "products-top-customers"
CUSTOMERS_PER_PRODUCT = "products-customers-per-product"
TOP_BY_CLASS = "products-top-by-class"
TOP_BY_CLUSTER = "products-top-by-cluster"

# Segments
CLASS_SIZES = "segments-class-sizes"
RFM_SEGMENT_SIZES = "segments-rfm-sizes"
CLUSTER_SCATTER = "segments-cluster-scatter"
ELBOW = "segments-elbow"
SILHOUETTE = "segments-silhouette"
SANKEY = "segments-sankey"
RUN_FROM = "segments-run-from"
RUN_TO = "segments-run-to"
CUSTOMER_TABLE = "segments-customer-table"
CUSTOMER_COUNT = "segments-customer-count"
EXPORT_BUTTON = "segments-export"
EXPORT_DOWNLOAD = "segments-export-download"
EXPORT_QUERY = "segments-export-query"
CUSTOMER_QUERY = "segments-customer-query"  # the page URL's query, for the table's blocks

# Recommendations
LOOKUP_INPUT = "recs-lookup-input"
LOOKUP_BUTTON = "recs-lookup-button"
LOOKUP_RESULT = "recs-lookup-result"
RULES_CLUSTER = "recs-rules-cluster"
RULES_TABLE = "recs-rules-table"

# Offers and jobs
OFFER_STATUS = "offers-by-status"
OFFER_UPLIFT = "offers-uplift"
OFFER_VERDICT = "offers-verdict"  # + "-<n>": one per offer, in the page's order
OFFER_CURVE = "offers-curve"  # + "-<n>"
OFFER_CLASSES = "offers-classes"  # + "-<n>"
SEGMENT_KPIS = "segments-kpis"
JOBS_TABLE = "jobs-table"

# Value & risk
VALUE_CLV_DISTRIBUTION = "value-clv-distribution"
VALUE_P_ALIVE = "value-p-alive"
VALUE_CALIBRATION = "value-calibration"
VALUE_AT_RISK_TABLE = "value-at-risk-table"
VALUE_EXPORT_BUTTON = "value-export"
VALUE_EXPORT_DOWNLOAD = "value-export-download"
