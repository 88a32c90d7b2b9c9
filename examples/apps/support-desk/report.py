"""The desk's figures as a table (what desk.py prints, and the README shows) and a plot."""

from __future__ import annotations

from pathlib import Path


def _at(threshold: float | None) -> str:
    return "none reaches the target (no automatic answers)" if threshold is None else f"{threshold:.3f}"


def table(r: dict) -> str:
    t, f, routes = r["intent_threshold"], r["faq_threshold"], r["routes"]
    lines = [
        f"support-desk ({r['model']}), target precision {r['target_precision']:.0%}",
        "| figure | value |",
        "|---|---:|",
        f"| intent accuracy (test, {routes['covered']['n']} messages of the {r['sizes']['covered_intents']} "
        f"covered intents) | {r['intent_accuracy']:.1%} |",
        f"| FAQ retrieval recall@1 / recall@5 ({r['sizes']['faq-eval']} held-out questions, "
        f"{r['sizes']['faq_entries']} entries) | {r['retrieval']['recall_at_1']:.1%} / "
        f"{r['retrieval']['recall_at_5']:.1%} |",
        f"| the same, TF-IDF keyword baseline | {r['retrieval']['tfidf_recall_at_1']:.1%} / "
        f"{r['retrieval']['tfidf_recall_at_5']:.1%} |",
        f"| intent threshold (chosen on {r['sizes']['calib']} calibration messages) | {_at(t['threshold'])} |",
        f"| template precision / coverage, calibration | {t['precision']:.1%} / {t['coverage']:.1%} |",
        f"| template precision / coverage, test | {t['test']['precision']:.1%} / {t['test']['coverage']:.1%} |",
        f"| FAQ similarity threshold (precision {f['precision']:.1%} where chosen) | {_at(f['threshold'])} |",
        f"| **handled automatically, test** (template + FAQ) | **{routes['automatic']:.1%}** |",
        "",
        "| test messages | n | template | FAQ | human |",
        "|---|---:|---:|---:|---:|",
    ]
    for group in ("all", "covered", "product_question", "complaint"):
        g = routes[group]
        lines.append(f"| {group} | {g['n']} | {g['template']:.1%} | {g['faq']:.1%} | {g['human']:.1%} |")
    return "\n".join(lines)


def samples(r: dict, templates: dict[str, str], faq: list[dict], per_route: int = 2) -> str:
    """A few test messages and what the desk did with them: the first of each route."""
    answers = {e["id"]: e["answer"] for e in faq}
    lines = []
    for how in ("template", "faq", "human"):
        for m in [m for m in r["test_messages"] if m["route"] == how][:per_route]:
            if how == "template":
                why, reply = f"intent {m['predicted']} ({m['confidence']:.2f})", templates[m["predicted"]]
            elif how == "faq":
                why, reply = f"FAQ {m['faq']} (similarity {m['similarity']:.2f})", answers[m["faq"]]
            else:
                why, reply = f"unsure: intent {m['confidence']:.3f}, FAQ {m['similarity']:.3f}", "(to a person)"
            lines += [f"> {m['text']}", f"  {how}: {why} [really {m['intent']}]",
                      f"  {reply[:110] + ('...' if len(reply) > 110 else '')}"]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    """Precision against coverage of the template answers, as the threshold falls; the chosen one marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, style in (("calib", "-"), ("test", "--")):
        points = r["curves"][name]
        ax.plot([p["coverage"] for p in points], [p["precision"] for p in points], style,
                label=f"{name} ({r['sizes'][name]} messages)")
    t = r["intent_threshold"]
    ax.axhline(r["target_precision"], color="grey", lw=0.8, ls=":", label=f"target {r['target_precision']:.0%}")
    if t["threshold"] is not None:
        ax.plot([t["coverage"]], [t["precision"]], "o", color="C0", label=f"chosen: confidence ≥ {t['threshold']:.2f}")
        ax.plot([t["test"]["coverage"]], [t["test"]["precision"]], "o", color="C1", label="the same threshold on test")
    ax.set_xlabel("coverage: share of messages answered by a template")
    ax.set_ylabel("precision: share of those answers right")
    ax.set_title(f"support-desk intent model ({r['model']}): coverage vs precision")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
