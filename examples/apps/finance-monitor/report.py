"""The monitor's report: a table of the figures and a plot of every company's sentiment with its alerts."""

from __future__ import annotations

from pathlib import Path

import rules

MARKERS = {"level": ("v", "tab:red"), "drop": ("X", "tab:orange"), "burst": ("o", "tab:purple")}


def table(results: dict) -> str:
    acc, lat, chk = results["accuracy"], results["latency"], results["restart"]
    lines = [
        f"model {results['model']} ({results['ref']} version {acc['version']}), {results['device']}",
        f"accuracy on {acc['n']} held-out headlines: {acc['all']:.3f} "
        f"(templates seen in training {acc['seen_templates']:.3f}, unseen {acc['unseen_templates']:.3f}); "
        f"on the live stream {results['stream_accuracy']:.3f}",
        f"live run: {lat['headlines']} headlines at {results['rate_per_s']:g}/s ({results['feed_s']:.1f} s), "
        f"{lat['alerts']} alerts",
        f"  arrival -> webhook: p50 {lat['alert_p50_s'] * 1000:.0f} ms, p95 {lat['alert_p95_s'] * 1000:.0f} ms, "
        f"max {lat['alert_max_s'] * 1000:.0f} ms",
        f"  arrival -> labelled: p50 {lat['label_p50_s'] * 1000:.0f} ms, p95 {lat['label_p95_s'] * 1000:.0f} ms",
        f"kill/restart: SIGKILL at headline {chk['killed']['at_headline']} "
        f"({chk['killed']['labelled']} labelled, {chk['killed']['alerts_received']} alerts sent by then; "
        f"down {chk['killed']['down_s']:.1f} s, {chk['killed']['bytes_arrived_while_down']} bytes arrived meanwhile); "
        f"after the restart {chk['labelled']}/{chk['headlines_sent']} labelled, {chk['lost']} lost, "
        f"{chk['labelled_twice']} twice; {chk['alerts_received']} alerts received, "
        f"{chk['alerts_received_twice']} twice; same alerts as without the kill: {chk['same_as_uninterrupted']}",
    ]
    return "\n".join(lines)


def plot(scored: list[dict], truth: dict[str, str], alerts: list[dict], path: Path) -> None:
    """One panel per company: rolling sentiment from the model's labels and from the true ones, alerts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = rules.Rules()
    companies = sorted({r["company"] for r in scored})
    cols = 2
    fig, axes = plt.subplots((len(companies) + cols - 1) // cols, cols, figsize=(12, 2.2 * len(companies) / cols + 1),
                             sharex=True, sharey=True, squeeze=False)
    position = {r["id"]: i for i, r in enumerate(scored)}
    for ax, company in zip(axes.flat, companies, strict=False):
        mine = [r for r in scored if r["company"] == company]
        x = [position[r["id"]] for r in mine]
        true_scores: list[float] = []
        true_level = []
        for r in mine:
            true_scores.append(rules.SCORE[truth.get(r["id"], r["label"])])
            true_level.append(rules.level(true_scores, cfg))
        ax.plot(x, true_level, color="0.7", lw=1, label="true labels")
        ax.plot(x, [r["level"] for r in mine], color="tab:blue", lw=1.3, label="model's labels")
        ax.axhline(cfg.level_below, color="tab:red", ls=":", lw=0.8)
        for alert in (a for a in alerts if a["company"] == company):
            marker, color = MARKERS[alert["rule"]]
            i = position[alert["headline"]]
            ax.scatter([i], [next(r["level"] for r in mine if r["id"] == alert["headline"])], marker=marker,
                       color=color, s=45, zorder=3, label=f"{alert['rule']} alert")
        ax.set_title(company, fontsize=9)
        ax.set_ylim(-1.05, 1.05)
    for ax in axes.flat[len(companies):]:
        ax.axis("off")
    handles = {}
    for ax in axes.flat:
        for h, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, h)
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=len(handles), fontsize=8)
    fig.supxlabel("headline (arrival order)", fontsize=9)
    fig.supylabel(f"rolling sentiment (last {cfg.window})", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
