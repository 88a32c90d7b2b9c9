"""PNG plots of simulation results: JCT CDF per policy, GPU utilisation, share per owner.

matplotlib is imported inside the functions (with the Agg backend), so importing llmos.sim
stays cheap and works without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmos._lazy import require
from llmos.sim._report import entitled_at
from llmos.sim._result import SimResult

__all__ = ["write_plots"]

_BINS = 400  # points per time series: enough to see trends, small enough for a quick PNG


def write_plots(results: Sequence[SimResult], out_dir: str | Path) -> list[Path]:
    """Write jct_cdf.png, utilisation.png and share_<policy>.png under `out_dir`; return the paths."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [_jct_cdf(plt, results, out / "jct_cdf.png"), _utilisation(plt, results, out / "utilisation.png")]
    paths += [_shares(plt, r, out / f"share_{r.policy}.png") for r in results]
    return paths


def _pyplot():
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot")


def _jct_cdf(plt, results: Sequence[SimResult], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        jct = sorted((o.end_s - o.submit_s) / 3600 for o in r.outcomes.values() if o.end_s is not None)
        if jct:
            ax.plot(jct, [(k + 1) / len(jct) for k in range(len(jct))], label=r.policy)
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (hours, log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title("JCT CDF per policy")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def _utilisation(plt, results: Sequence[SimResult], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        t, busy = _binned(r.samples.times_s, r.samples.busy_gpus)
        ax.plot([x / 86400 for x in t], [b / r.total_gpus for b in busy], label=r.policy)
    ax.set_xlabel("simulated time (days)")
    ax.set_ylabel("GPU utilisation")
    ax.set_ylim(0, 1.05)
    ax.set_title("GPU utilisation over time")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def _shares(plt, r: SimResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    s = r.samples
    entitled = [entitled_at(r, k) for k in range(len(s.times_s))]
    for o in s.owners:
        held = [s.owner_allocated(o, k) / r.total_gpus for k in range(len(s.times_s))]
        t, share = _binned(s.times_s, held)
        days = [x / 86400 for x in t]
        line = ax.plot(days, share, label=o, linewidth=1.2)[0]
        _, fair = _binned(s.times_s, [e[o] / r.total_gpus for e in entitled])
        ax.plot(days, fair, color=line.get_color(), linestyle=":", linewidth=1.0)
    ax.set_xlabel("simulated time (days)")
    ax.set_ylabel("share of GPUs allocated (dotted: entitled)")
    ax.set_title(f"Share per owner over time vs. entitlement ({r.policy})")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def _binned(times: Sequence[float], values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Time-weighted means of a step function over equal bins."""
    if len(times) < 2:
        return list(times), list(values)
    t0, t1 = times[0], times[-1]
    width = (t1 - t0) / _BINS or 1.0
    acc = [0.0] * _BINS
    for k in range(len(times) - 1):
        a, b, v = times[k], times[k + 1], values[k]
        while a < b:
            i = min(int((a - t0) / width), _BINS - 1)
            if i < _BINS - 1 and t0 + (i + 1) * width <= a:  # float rounding at a bin edge
                i += 1
            edge = b if i == _BINS - 1 else min(b, t0 + (i + 1) * width)
            acc[i] += v * (edge - a)
            a = edge
    return [t0 + (i + 0.5) * width for i in range(_BINS)], [x / width for x in acc]


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
