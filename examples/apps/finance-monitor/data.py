"""The monitor's data: templated financial headlines about fictional companies, generated here.

Nothing is downloaded: the companies, templates and fillers below were written for this app (the
project's license), and a seeded generator turns them into labelled headlines. A quarter of the
templates never reach training: they appear only in the held-out test set, so its accuracy says
how well the model reads phrasings it has not seen. `make_*` are pure functions of a seed;
`write_all` is the thin shell that writes the CSV and JSONL files.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

LABELS = ("negative", "neutral", "positive")
COMPANIES = ("Aldermoor Foods", "Brightwater Labs", "Corvane Motors", "Dunmore Energy", "Elsworth Bank",
             "Fennick Retail", "Gristvale Mining", "Halloway Pharma")
# Companies the classifier never sees in training: the stream is about them too.
NEW_COMPANIES = ("Ivenry Telecom", "Jorvik Airlines")
TEMPLATES = {
    "positive": [
        "{co} beats quarterly earnings estimates as revenue rises {pct}%",
        "{co} raises full-year guidance after strong {quarter}",
        "{co} shares jump {pct}% on record {product} sales",
        "{co} wins {amount} contract to supply {product}",
        "Analysts upgrade {co} to buy, citing margin growth",
        "{co} announces {amount} share buyback and higher dividend",
        "{co} profit climbs {pct}% in {quarter}, topping forecasts",
        "{co} secures regulatory approval for new {product}",
        "{co} expands into {region} with strong early demand",
        "Strong {product} orders lift {co} to a record {quarter}",
        "{co} cuts debt by {amount} ahead of schedule",
        "Investors cheer as {co} doubles {product} output",
    ],
    "negative": [
        "{co} misses earnings estimates as sales fall {pct}%",
        "{co} cuts full-year outlook after weak {quarter}",
        "{co} shares slump {pct}% after profit warning",
        "Regulators fine {co} {amount} over {product} safety failures",
        "Analysts downgrade {co} to sell on shrinking margins",
        "{co} recalls {product} after defect reports",
        "{co} suspends dividend as losses widen in {quarter}",
        "{co} faces lawsuit over misleading {product} claims",
        "{co} lays off {pct}% of staff amid falling demand in {region}",
        "Credit agencies cut {co} rating on mounting debt",
        "{co} halts {product} production after plant fire",
        "Chief executive of {co} resigns amid accounting probe",
    ],
    "neutral": [
        "{co} to report {quarter} results next week",
        "{co} appoints new chief financial officer",
        "{co} to present at investor conference in {region}",
        "{co} schedules annual shareholder meeting",
        "{co} completes previously announced office move",
        "{co} files routine quarterly report with regulators",
        "{co} names {region} head as part of planned succession",
        "{co} holds {product} prices steady for {quarter}",
        "{co} confirms date of capital markets day",
        "{co} renews existing credit facility on unchanged terms",
        "{co} publishes annual sustainability report",
        "{co} says {product} launch remains on schedule",
    ],
}
HELD_OUT_EVERY = 4  # templates 3, 7, 11 of each sentiment appear only in the test set
FILL = {
    "pct": [str(n) for n in (3, 5, 8, 12, 15, 20, 25, 30)],
    "quarter": ["first quarter", "second quarter", "third quarter", "fourth quarter", "the holiday quarter"],
    "product": ["battery", "vaccine", "electric truck", "credit card", "frozen meal", "copper", "jet fuel",
                "broadband", "solar panel", "software"],
    "amount": ["$40 million", "$120 million", "$1.2 billion", "$300 million", "$75 million"],
    "region": ["Europe", "Asia", "South America", "the Nordics", "Canada", "Africa"],
}


def headline(rng: random.Random, label: str, template: int, company: str) -> str:
    """One headline from the given template, with random fillers."""
    text = TEMPLATES[label][template]
    return text.format(co=company, **{key: rng.choice(values) for key, values in FILL.items()})


def _templates(held_out: bool) -> list[tuple[str, int]]:
    return [(label, i) for label in LABELS for i in range(len(TEMPLATES[label]))
            if (i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1) == held_out]


def make_split(seed: int, n: int, *, held_out_share: float = 0.0) -> list[dict]:
    """n labelled rows (text, label, company, template); held_out_share of them from the unseen templates."""
    rng = random.Random(seed)
    seen, unseen = _templates(False), _templates(True)
    rows = []
    for _ in range(n):
        pool = unseen if rng.random() < held_out_share else seen
        label, template = rng.choice(pool)
        company = rng.choice(COMPANIES + NEW_COMPANIES if pool is unseen else COMPANIES)
        rows.append({"text": headline(rng, label, template, company), "label": label, "company": company,
                     "template": f"{label}-{template}", "seen_template": pool is seen})
    return rows


# The stream's scenario: (company, first item, last item, mix of negative/neutral/positive) for
# the stretches where a company's news turns; elsewhere every company has the base mix.
BASE_MIX = (0.15, 0.5, 0.35)
EPISODES = (("Corvane Motors", 0.25, 0.45, (0.85, 0.1, 0.05)),   # a crisis: the level falls below the bar
            ("Elsworth Bank", 0.55, 0.62, (1.0, 0.0, 0.0)),     # a short burst of bad news
            ("Ivenry Telecom", 0.4, 0.7, (0.6, 0.3, 0.1)))      # a slide


def make_stream(seed: int, n: int) -> list[dict]:
    """n headlines in arrival order, each {id, company, text, label}; the label is the truth, for scoring only."""
    rng = random.Random(seed)
    companies = COMPANIES + NEW_COMPANIES
    rows = []
    for i in range(n):
        company = companies[rng.randrange(len(companies))]
        mix = BASE_MIX
        for who, start, end, episode_mix in EPISODES:
            if i >= start * n and i < end * n and rng.random() < 0.6:
                company, mix = who, episode_mix
        label = rng.choices(LABELS, weights=mix)[0]
        template = rng.randrange(len(TEMPLATES[label]))
        rows.append({"id": f"h{i:06d}", "company": company, "text": headline(rng, label, template, company),
                     "label": label})
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_all(folder: Path, *, n_train: int = 1800, n_eval: int = 300, n_test: int = 600,
              n_stream: int = 1500) -> dict[str, list[dict]]:
    """train/eval/test CSVs (text,label) and stream.jsonl (the headlines the monitor replays) in folder."""
    splits = {"train": make_split(1, n_train), "eval": make_split(2, n_eval),
              "test": make_split(3, n_test, held_out_share=0.5), "stream": make_stream(4, n_stream)}
    for name in ("train", "eval", "test"):
        write_csv(folder / f"{name}.csv", splits[name])
    with (folder / "stream.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in splits["stream"])
    return splits
