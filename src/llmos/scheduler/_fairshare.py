"""Fair share: weighted dominant-resource shares, decayed usage, and max-min entitlements.

An owner's standing is its dominant share (the largest fraction of any one resource it
holds) divided by its weight; the owner with the lowest standing goes next (DRF). Usage
history enters through an exponentially decayed average of what the owner held, so an owner
that hogged the cluster an hour ago waits a little longer now, and the memory fades with the
configured half-life.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from llmos.scheduler._resources import ZERO, Resources
from llmos.scheduler._types import RunningJob

__all__ = ["allocation_by_group", "by_owner", "class_entitlements", "decay_usage", "entitlements",
           "fair_entitlements", "owner_standing"]


def decay_usage(previous: Resources, held: Resources, elapsed_s: float, half_life_s: float) -> Resources:
    """The decayed average of what an owner held, `elapsed_s` after `previous`, holding `held` since.

    Exact for a piecewise-constant allocation: the old average keeps weight 2^(-elapsed/half_life).
    """
    if half_life_s <= 0:
        return held
    keep = 0.5 ** (elapsed_s / half_life_s)
    return Resources(held.cpus + (previous.cpus - held.cpus) * keep,
                     held.memory_gb + (previous.memory_gb - held.memory_gb) * keep,
                     held.gpus + (previous.gpus - held.gpus) * keep)


def allocation_by_group(running: Iterable[RunningJob]) -> dict[tuple[int, str], Resources]:
    """What each (class, owner) holds now (stopping jobs included: they still hold their resources)."""
    held: dict[tuple[int, str], list[float]] = {}
    for rj in running:
        t = rj.job.total
        key = (rj.priority, rj.owner)
        acc = held.get(key)
        if acc is None:
            held[key] = [t.cpus, t.memory_gb, t.gpus]
        else:
            acc[0] += t.cpus
            acc[1] += t.memory_gb
            acc[2] += t.gpus
    return {key: Resources(*acc) for key, acc in held.items()}


def by_owner(held: Mapping[tuple[int, str], Resources]) -> dict[str, Resources]:
    out: dict[str, Resources] = {}
    for (_, owner), r in held.items():
        out[owner] = out[owner] + r if owner in out else r
    return out


def entitlements(demand: Mapping[str, float], weights: Mapping[str, float], capacity: float) -> dict[str, float]:
    """Weighted max-min fair split of `capacity` among owners, none above its demand.

    Water-filling: split what is left by weight; owners whose demand is below their part get
    their demand and leave the rest to the others. Owners with no demand are entitled to 0.
    """
    result = dict.fromkeys(demand, 0.0)
    active = {o for o, d in demand.items() if d > 0}
    left = capacity
    while active and left > 1e-12:
        weight_sum = sum(weights.get(o, 1.0) for o in active)
        per_weight = left / weight_sum
        sated = {o for o in active if demand[o] - result[o] <= per_weight * weights.get(o, 1.0)}
        if not sated:
            for o in active:
                result[o] += per_weight * weights.get(o, 1.0)
            break
        for o in sated:
            left -= demand[o] - result[o]
            result[o] = demand[o]
        active -= sated
    return result


def class_entitlements(demand: Mapping[tuple[int, str], float], weights: Mapping[str, float],
                       capacity: float) -> dict[str, float]:
    """Strict classes, then max-min fair: each class, highest first, splits what those above left.

    `demand` is per (class, owner); the result per owner sums its parts over classes.
    """
    by_class: dict[int, dict[str, float]] = {}
    for (c, o), d in demand.items():
        by_class.setdefault(c, {})[o] = d
    out: dict[str, float] = {}
    left = capacity
    for cls in sorted(by_class, reverse=True):
        part = entitlements(by_class[cls], weights, left)
        for owner, amount in part.items():
            out[owner] = out.get(owner, 0.0) + amount
        left -= sum(part.values())
    return out


def fair_entitlements(held: Mapping[tuple[int, str], Resources], queued: Mapping[tuple[int, str], Resources],
                      weights: Mapping[str, float], total: Resources) -> dict[str, float]:
    """Each owner's fair dominant share of the cluster: strict classes, then weighted max-min
    fair within a class, of its demand (what each (class, owner) holds plus what it has queued).

    With the real demand, not "the whole cluster" for anyone waiting, a preemption moves a job
    from held to queued and changes no entitlement, and an owner with little queued is not
    credited with a share it cannot use.
    """
    demand: dict[tuple[int, str], float] = {}
    for key in held.keys() | queued.keys():
        # held + queued and its dominant share, in plain floats: every round computes this
        h, q = held.get(key, ZERO), queued.get(key, ZERO)
        cpus, mem, gpus = h.cpus + q.cpus, h.memory_gb + q.memory_gb, h.gpus + q.gpus
        if cpus != 0 or mem != 0 or gpus != 0:
            demand[key] = _dominant_share(cpus, mem, gpus, total)
    return class_entitlements(demand, weights, 1.0)


def _dominant_share(cpus: float, memory_gb: float, gpus: float, total: Resources) -> float:
    """`Resources(cpus, memory_gb, gpus).dominant_share(total)`, the same divisions in the same order."""
    share = 0.0
    if total.cpus > 0:
        share = cpus / total.cpus
    if total.memory_gb > 0:
        share = max(share, memory_gb / total.memory_gb)
    if total.gpus > 0:
        share = max(share, gpus / total.gpus)
    return share


def owner_standing(held: Resources, decayed: Resources, weight: float, total: Resources,
                   history_weight: float, entitled: float | None = None) -> float:
    """Lower goes first: weighted dominant share now, plus a share of the decayed history.

    Given the owner's `entitled` dominant share (its weighted max-min part of its demand), the
    present counts as the fraction of it held: an owner holding 3 of its 4 entitled GPUs then
    waits behind one holding 10 of 20, where shares over weights would send the small owner
    first and keep the big one below its share as long as the small one has work.
    """
    now = held.dominant_share(total)
    past = decayed.dominant_share(total) if decayed is not ZERO else 0.0
    if entitled is None:
        return (now + history_weight * past) / weight
    return now / entitled + history_weight * past / weight
