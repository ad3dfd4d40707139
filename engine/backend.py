"""The seam between a run and the backend that does its work that grows with the lines.

A run (engine.pipeline.segment_lines) asks a `LineWork` for the per-customer and per-product
tables it needs: the RFM figures, the sales figures (KPIs, months, products, products per
class and cluster), the growth windows of the classes, the purchase days of the CLV models, the
basket rules of each cluster, the recommendations. Everything else (scores, segment names,
k selection, clustering, tiers, classes, profiles, the CLV fit) runs on those tables with the
same code whichever backend made them.

`PandasLines` is the one-machine backend: the lines as a pandas frame, exactly the engine's
functions as they always ran. The Spark backend (engine/spark/lines.py, `SparkLines`) computes
the same tables in Spark and hands only them to the driver (SPEC.md, "Scale-out").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from engine.classes import growth_frame
from engine.rfm import CustomerLines, coded_customer_lines, rfm_table
from engine.sales_figures import SalesFigures, group_products, sales_figures
from engine.settings import BasketSettings, ClvSettings, RecommendSettings

if TYPE_CHECKING:
    from engine.baskets import CodedLines
    from engine.clv import ClvResult

BACKENDS = ("pandas", "spark")


class LineWork(Protocol):
    """A run's lines on one backend: the window [since, until], its as_of and the history before
    it, and the tables computed from them."""

    @property
    def as_of(self) -> date: ...
    @property
    def n_lines(self) -> int: ...
    @property
    def has_products(self) -> bool: ...

    def rfm_table(self) -> pd.DataFrame:
        """engine.rfm.rfm_table of the window."""

    def sales_figures(self) -> SalesFigures:
        """engine.sales_figures.sales_figures of the window (and the history's first
        purchases)."""

    def growth(self, growth_days: int) -> pd.DataFrame:
        """engine.classes.growth_frame of the history."""

    def group_products(self, assignments: pd.DataFrame) -> pd.DataFrame:
        """engine.sales_figures.group_products of the window for the run's customers."""

    def clv(self, settings: ClvSettings, groups: pd.DataFrame) -> ClvResult:
        """engine.clv.customer_value of the history."""

    def release_customer_lines(self) -> None:
        """The customer-level work is done (RFM, classes, CLV): what it held can go."""

    def rules(self, assignments: pd.DataFrame, settings: BasketSettings) -> pd.DataFrame:
        """engine.baskets.mine_rules of the window."""

    def recommendations(self, assignments: pd.DataFrame, rules: pd.DataFrame,
                        settings: RecommendSettings) -> pd.DataFrame | None:
        """engine.recommend.recommend of the history: on both backends its inputs
        (engine.recommend.RecommendInputs) aggregated where the lines are, then
        engine.recommend.rank_recommendations on the driver."""

    def release(self) -> None:
        """The run's work on the lines is done."""


@dataclass
class PandasLines:
    """The lines of a run in one pandas frame: the engine's own functions, integer codes made
    once and shared (the window's, reused for the history when the history is the window)."""

    history: pd.DataFrame
    window: pd.DataFrame
    as_of: date
    non_product_codes: Sequence[str]
    has_products: bool  # a stock code on any line handed to the run
    _line_codes: CodedLines | None = field(default=None, repr=False)
    _customer_lines: CustomerLines | None = field(default=None, repr=False)

    @property
    def n_lines(self) -> int:
        return len(self.window)

    @property
    def _same(self) -> bool:
        return self.history is self.window

    def rfm_table(self) -> pd.DataFrame:
        from engine.baskets import CodedLines  # here: it loads mlxtend, which only a run needs

        # The window's lines as integer codes, made once: RFM, the classes (when their history
        # is the window itself), the basket rules and the recommendations (same) all use them.
        self._line_codes = CodedLines.of(self.window, self.non_product_codes)
        self._customer_lines = coded_customer_lines(self.window, self.non_product_codes,
                                                    self._line_codes)
        return rfm_table(self.window, as_of=self.as_of, non_product_codes=self.non_product_codes,
                         coded=self._customer_lines)

    def sales_figures(self) -> SalesFigures:
        return sales_figures(self.window, self.history, non_product_codes=self.non_product_codes,
                             has_products=self.has_products, coded=self._line_codes)

    def group_products(self, assignments: pd.DataFrame) -> pd.DataFrame:
        return group_products(self.window, assignments, non_product_codes=self.non_product_codes,
                              coded=self._line_codes)

    def growth(self, growth_days: int) -> pd.DataFrame:
        return growth_frame(self.history, as_of=self.as_of, growth_days=growth_days,
                            non_product_codes=self.non_product_codes,
                            coded=self._customer_lines if self._same else None)

    def clv(self, settings: ClvSettings, groups: pd.DataFrame) -> ClvResult:
        from engine.clv import customer_value  # here: the fit loads pymc only when it runs

        return customer_value(self.history, as_of=self.as_of, settings=settings,
                              non_product_codes=self.non_product_codes, groups=groups,
                              coded=self._customer_lines if self._same else None)

    def release_customer_lines(self) -> None:
        self._customer_lines = None

    def rules(self, assignments: pd.DataFrame, settings: BasketSettings) -> pd.DataFrame:
        from engine.baskets import mine_rules

        return mine_rules(self.window, assignments, settings=settings,
                          non_product_codes=self.non_product_codes, coded=self._line_codes)

    def recommendations(self, assignments: pd.DataFrame, rules: pd.DataFrame,
                        settings: RecommendSettings) -> pd.DataFrame | None:
        from engine.recommend import recommend

        return recommend(self.history, assignments, rules, settings=settings,
                         non_product_codes=self.non_product_codes,
                         coded=self._line_codes if self._same else None, as_of=self.as_of)

    def release(self) -> None:
        self._line_codes = None
