"""The fair-share figures of the report, on a hand-made time series."""

from __future__ import annotations

import pytest

from llmos.scheduler import Resources
from llmos.sim import Samples, SimResult
from llmos.sim._report import owner_shares


def _gpus(n: float) -> Resources:
    return Resources(0, 0, n)


def test_share_ratio_and_the_instant_wise_figure() -> None:
    # 8 GPUs, no classes. 0-100 s: `a` holds 4 of its 4 entitled and waits for 4 more.
    # 100-300 s: `a` holds 2, still entitled to 4 (`b` holds 6 and wants no more).
    s = Samples(["a", "b"], [1])
    s.add(0.0, 8, {(1, "a"): _gpus(4), (1, "b"): _gpus(4)}, {(1, "a"): _gpus(4)})
    s.add(100.0, 8, {(1, "a"): _gpus(2), (1, "b"): _gpus(6)}, {(1, "a"): _gpus(6)})
    s.add(300.0, 8, {(1, "a"): _gpus(8)}, {})
    result = SimResult("test", False, 8, {}, [], [], s, {"a": 1.0, "b": 1.0}, [], [], 0, 0.0, 0.0)
    a, b = owner_shares(result)
    assert a.waiting_s == 300.0 and b.waiting_s == 0.0
    assert a.share == pytest.approx((4 * 100 + 2 * 200) / (8 * 300))
    assert a.entitled == pytest.approx(0.5) and a.ratio == pytest.approx(2 / 3)
    # Held >= 0.9x the entitlement for the first 100 of its 300 waiting seconds.
    assert a.time_at_90 == pytest.approx(1 / 3)
    assert b.time_at_90 == 1.0 and b.ratio == 1.0
