"""The recommender's figures as a table and a plot: what recommender.py prints and writes, and the
README shows."""

from __future__ import annotations

from pathlib import Path


def table(r: dict) -> str:
    k, s = r["k"], r["sizes"]
    lines = [f"recommender ({r['model']}): {s['test_interactions']} held-out interactions of {s['users']} users, "
             f"{s['items']} items in {s['categories']} categories",
             f"| method | recall@{k} | NDCG@{k} |", "|---|---:|---:|"]
    for name, m in r["methods"].items():
        lines.append(f"| {name} | {m[f'recall_at_{k}']:.3f} | {m[f'ndcg_at_{k}']:.3f} |")
    route = r["route"]["answer"]
    lines += ["", f"GET /recommend?user={route['user']}&k=5 (history: {'; '.join(route['history'][-3:])}):"]
    lines += [f"  {i['id']}  {i['title']}  ({i['category']}, ranker {i['score']:.2f})" for i in route["items"]]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    """recall@k and NDCG@k of every method, side by side, the baselines first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, names = r["k"], list(r["methods"])
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    width = 0.38
    for i, (metric, label) in enumerate(((f"recall_at_{k}", f"recall@{k}"), (f"ndcg_at_{k}", f"NDCG@{k}"))):
        values = [r["methods"][n][metric] for n in names]
        bars = ax.bar([x + (i - 0.5) * width for x in range(len(names))], values, width, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    ax.set_xticks(range(len(names)), names, fontsize=9)
    ax.set_ylabel("on held-out interactions")
    s = r["sizes"]
    ax.set_title(f"recommender ({r['model']}): {s['test_interactions']} held-out interactions of {s['users']} users",
                 fontsize=10)
    ax.set_ylim(0, max(m for n in names for m in r["methods"][n].values()) * 1.2)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
