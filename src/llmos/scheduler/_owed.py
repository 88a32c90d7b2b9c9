"""Owed share: how far below its entitlement an owner has been lately, so it is paid back.

Max-min fairness at every instant cannot be met with whole jobs: an owner 3 GPUs below its
entitlement whose next job needs a whole 8-GPU node stays below, as no rule that looks only
at the present lets it take 8 when it is owed 3. So the caller keeps, per owner, the decayed
integral of (entitlement - held), in dominant-share-seconds (`accrue_owed`: exact for the
piecewise-constant state between events, with the usage history's half-life), and the round
raises each owner's entitlement by what it is owed over `debt_horizon_s` (lowers it for an
owner that held more than its share). An owner kept short for a while may then reclaim beyond
its instant entitlement, and one that was over gives way first; as in deficit round robin,
what whole jobs make unfair at one moment is paid back over the next hour or so instead of
persisting. Nothing is owed while an owner holds its entitlement, so a steady fair state
stays put.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from llmos.scheduler._fairshare import fair_entitlements
from llmos.scheduler._resources import Resources
from llmos.scheduler._snapshot import QueueKey
from llmos.scheduler._types import Owner

__all__ = ["accrue_owed", "owner_entitlements", "update_owed"]

# An owner's entitlement for reclaim stays within [1/2, 2] x its instant one, so a long debt
# (or credit) cannot turn one owner into everyone's victim.
_LOW, _HIGH = 0.5, 2.0


def accrue_owed(owed: float, gap: float, elapsed_s: float, half_life_s: float) -> float:
    """`owed` after `elapsed_s` more seconds `gap` (entitled - held, dominant share) below.

    The decayed integral: what was owed keeps weight 2^(-elapsed/half_life) and the new gap
    adds its integral under the same decay. A half-life of 0 keeps no memory.
    """
    if half_life_s <= 0:
        return 0.0
    rate = math.log(2) / half_life_s
    keep = math.exp(-rate * elapsed_s)
    return owed * keep + gap * (1 - keep) / rate


def update_owed(owed: Mapping[str, float], held: Mapping[QueueKey, Resources],
                queued: Mapping[QueueKey, Resources], owners: Mapping[str, Owner], total: Resources,
                elapsed_s: float, half_life_s: float) -> dict[str, float]:
    """Every owner's `owed` after `elapsed_s` in the state `held` / `queued` (by class, owner)."""
    weights = {o: owners[o].weight if o in owners else 1.0 for _, o in held.keys() | queued.keys()}
    fair = fair_entitlements(held, queued, weights, total)
    by_owner: dict[str, Resources] = {}
    for (_, o), r in held.items():
        by_owner[o] = by_owner[o] + r if o in by_owner else r
    out = {}
    for o in owed.keys() | fair.keys() | by_owner.keys():
        share = by_owner[o].dominant_share(total) if o in by_owner else 0.0
        value = accrue_owed(owed.get(o, 0.0), fair.get(o, 0.0) - share, elapsed_s, half_life_s)
        if abs(value) > 1e-9:
            out[o] = value
    return out


def owner_entitlements(held: Mapping[QueueKey, Resources], queued: Mapping[QueueKey, Resources],
                         owners: Mapping[str, Owner], total: Resources, owed: Mapping[str, float],
                         horizon_s: float | None) -> dict[str, float]:
    """Each owner's fair dominant share (see `fair_entitlements`), moved by what it is owed."""
    weights = {o: owners[o].weight if o in owners else 1.0 for _, o in held.keys() | queued.keys()}
    fair = fair_entitlements(held, queued, weights, total)
    if not horizon_s or not owed:
        return fair
    return {o: min(max(e + owed.get(o, 0.0) / horizon_s, _LOW * e), _HIGH * e) for o, e in fair.items()}
