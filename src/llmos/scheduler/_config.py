"""Named policies: one configuration type, four presets, the same decision code underneath."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from llmos.scheduler._errors import SchedulerError

__all__ = ["POLICIES", "PolicyConfig", "policy_config"]


class PolicyConfig(BaseModel):
    """Which rules a round applies, and their knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("custom", description="Name shown in reports.")
    priority_classes: bool = Field(True, description="Consider higher classes strictly first.")
    fair_share: bool = Field(True, description="Order owners within a class by weighted DRF standing.")
    quotas: bool = Field(True, description="Enforce hard caps; let owners within their guarantee reclaim.")
    backfill: bool = Field(True, description="Let jobs pass a blocked one if they do not delay its reservation.")
    preemption: bool = Field(True, description="Preempt lower classes and borrowers when needed.")
    # A month: on a busy cluster with heavy-tailed jobs, waits of days are common, and a faster
    # clock lets old jobs of heavy users override fair share (measured: owners fall ~10% below
    # their entitlement with 7 days); any finite value still rules out starvation.
    aging_s: float | None = Field(
        30 * 86_400.0, gt=0,
        description="Waiting this long is worth one whole cluster share of standing (None: no aging).")
    half_life_s: float = Field(3_600.0, ge=0, description="Half-life of the decayed usage history.")
    history_weight: float = Field(0.25, ge=0, description="Weight of decayed usage next to current share.")
    # Five minutes: shorter settling lets an owner below its share reclaim sooner at the price of
    # more preemptions. On 32 synthetic traces (benchmarks/scheduler.py) 900 s left three owners
    # below 0.9x their entitlement, 300 s one; preemptions +24%, GPU time lost to them ~0.3%.
    settle_s: float = Field(
        300.0, ge=0, description="A job (re)started this recently is not taken by fair-share reclaim or "
                                 "moved, so jobs do not bounce (classes and guarantees act at once).")
    debt_horizon_s: float | None = Field(
        7_200.0, gt=0, description="Share an owner is owed (decayed over half_life_s) is paid back over this "
                                   "long, by reclaim beyond its instant entitlement (None: instant shares only).")
    backfill_depth: int = Field(
        64, ge=0, description="Most queued jobs a round examines past the reservation (bounds a round).")


POLICIES: dict[str, PolicyConfig] = {
    # The baseline: one queue in submit order; a blocked head blocks everyone behind it.
    "fifo": PolicyConfig(name="fifo", priority_classes=False, fair_share=False, quotas=False,
                         backfill=False, preemption=False, aging_s=None),
    # Strict classes (higher classes preempt lower ones), submit order within a class; no backfill.
    "priority": PolicyConfig(name="priority", fair_share=False, quotas=False, backfill=False),
    # Weighted DRF between owners, quotas, reclaim (guarantees and fair share); no classes, no backfill.
    "fair": PolicyConfig(name="fair", priority_classes=False, backfill=False),
    # Everything. Policies with preemption also repack fragmented GPUs for a blocked job.
    "full": PolicyConfig(name="full"),
}


def policy_config(name: str) -> PolicyConfig:
    """The preset called `name`."""
    try:
        return POLICIES[name]
    except KeyError:
        raise SchedulerError(f"unknown policy {name!r}.",
                             hint=f"Use one of: {', '.join(POLICIES)}.") from None
