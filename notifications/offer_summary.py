"""What one offer pass did, as the pass counts it and `segmint send-offers` prints it: counts
per outcome and skip reason, groups per offer, and each offer's smallest detectable uplift.
The pass itself is notifications/offers.py.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from engine.outcomes import HOLDOUT, TREATMENT, minimum_detectable_effect


@dataclass
class OfferPassSummary:
    pass_id: str
    run_id: int | None
    dry_run: bool
    eligible: int = 0
    sent: int = 0
    dry_runs: int = 0
    failed: int = 0
    unknown: int = 0
    deferred: int = 0  # Twilio kept answering 429/5xx: a later pass retries
    reconciled: int = 0
    holdout: int = 0  # eligible customers kept out of an offer to measure it
    groups: Counter[tuple[str, str]] = field(default_factory=Counter)  # (offer, group) -> customers
    holdout_share: float = 0.0
    skipped: Counter[str] = field(default_factory=Counter)
    previews: list[tuple[str, str]] = field(default_factory=list)  # (masked phone, body)
    note: str | None = None

    def lines(self) -> list[str]:
        mode = "dry run" if self.dry_run else "live"
        lines = [f"offer pass {self.pass_id} ({mode}) over run {self.run_id or '-'}"]
        if self.note:
            lines.append(self.note)
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()))
        lines += [
            f"eligible:   {self.eligible}",
            f"sent:       {self.sent}",
            f"dry-run:    {self.dry_runs}",
            f"failed:     {self.failed}",
            f"unknown:    {self.unknown}",
            f"deferred:   {self.deferred}",
            f"reconciled: {self.reconciled}",
            f"holdout:    {self.holdout}",
            f"skipped:    {sum(self.skipped.values())}" + (f" ({skipped})" if skipped else ""),
        ]
        return lines + self.mde_lines()

    def mde_lines(self) -> list[str]:
        """Per offer, the smallest uplift this pass's groups can detect (80 % power, alpha 0.05,
        at an assumed 10 % conversion without the offer)."""
        if not self.holdout_share:
            return ["holdout:    off (notifications.holdout_share = 0): no offer is measured"]
        lines = []
        for offer in sorted({offer for offer, _group in self.groups}):
            treated, held = self.groups[(offer, TREATMENT)], self.groups[(offer, HOLDOUT)]
            mde = minimum_detectable_effect([treated], [held], [MDE_BASELINE])[0] * 100
            reading = ("no holdout yet: nothing to compare" if not held or not treated
                       else f"smallest detectable uplift {mde:.1f} points")
            lines.append(f"measure {offer}: treatment {treated}, holdout {held} "
                         f"(share {self.holdout_share:.0%}): {reading} (80 % power, at a "
                         f"{MDE_BASELINE:.0%} base rate)")
        return lines


# The conversion rate without an offer assumed for the MDE printed before a pass (the estimate
# itself uses the holdout's measured rate).
MDE_BASELINE = 0.10
