"""The recommender's data, generated here from a fixed seed: a catalogue and users' histories.

Nothing is downloaded. The catalogue is written from the word lists below (written for this app):
six categories, each item a (category, style, product) combination described in a sentence or two.
Each synthetic user likes one or two categories and one style; their history is drawn mostly from
items that fit (weighted by each item's popularity), with some noise from the whole catalogue. The
last `HELD_OUT` interactions of every user are the test split; the rest train the models.

Everything but `write_all` is a pure function of its arguments (and of a seeded `random.Random`).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

HELD_OUT = 2  # the last interactions of each user, kept for the test
HISTORY = 5  # the latest items a user's history text names
NOISE = 0.15  # share of interactions drawn from the whole catalogue, whatever the user likes
STYLE_WEIGHT = 4.0  # how much more a user picks an item of their style

CATEGORIES = {
    "hiking": ("trail", ["backpack", "tent", "trekking poles", "rain jacket", "hiking boots", "headlamp",
                         "water filter", "sleeping bag"],
               "for long days on mountain trails and nights under the stars"),
    "cooking": ("kitchen", ["chef's knife", "cast iron pan", "spice set", "stand mixer", "cookbook",
                            "dutch oven", "cutting board", "pasta machine"],
                "for home cooks who like to bake, roast and simmer"),
    "jazz": ("jazz", ["vinyl record", "saxophone reeds", "trumpet mute", "songbook", "live album",
                      "box set", "biography", "concert ticket"],
             "for listeners of swing, bebop and late-night improvisation"),
    "gardening": ("garden", ["seed kit", "pruning shears", "watering can", "raised bed", "compost bin",
                             "trowel", "greenhouse", "plant food"],
                  "for growing vegetables, herbs and flowers outdoors"),
    "board games": ("tabletop", ["strategy game", "card game", "dice set", "party game", "puzzle box",
                                 "cooperative game", "chess set", "game table"],
                    "for game nights with friends and family around the table"),
    "astronomy": ("stargazing", ["telescope", "star atlas", "binoculars", "moon map", "planisphere",
                                 "eyepiece kit", "camera mount", "red torch"],
                  "for watching planets, galaxies and meteor showers"),
}
STYLES = {
    "budget": "An affordable, no-frills pick that does the job.",
    "premium": "A premium, handcrafted piece built to last a lifetime.",
    "beginner": "Simple to start with, ideal for a first-timer learning the basics.",
    "expert": "Made for seasoned experts who want advanced, professional detail.",
}


@dataclass(frozen=True)
class Item:
    id: str
    category: str
    style: str
    title: str
    text: str  # what the models read: title, category sentence, style sentence
    popularity: float  # the weight users draw it with


def catalogue(items_per_category: int, seed: int = 0) -> list[Item]:
    """`items_per_category` items in each category, styles and products mixed, popularity Zipf-like."""
    rng = random.Random(seed)
    items = []
    for c, (category, (word, products, purpose)) in enumerate(CATEGORIES.items()):
        combos = [(style, product) for product in products for style in STYLES]
        rng.shuffle(combos)
        for k, (style, product) in enumerate(combos[:items_per_category]):
            title = f"{style} {word} {product}"
            text = f"{title.capitalize()}: a {product} {purpose}. {STYLES[style]}"
            items.append(Item(f"i{c}{k:02d}", category, style, title, text, 1.0 / (1 + k) ** 0.7))
    return items


def users(n_users: int, items: list[Item], history_len: tuple[int, int], seed: int = 0) -> dict[str, list[str]]:
    """Each user's interactions in order (item ids, no repeats): mostly liked categories and style."""
    rng = random.Random(seed + 1)
    categories, styles = list(CATEGORIES), list(STYLES)
    out = {}
    for u in range(n_users):
        liked = set(rng.sample(categories, rng.choice((1, 2))))
        style = rng.choice(styles)
        fits = [i for i in items if i.category in liked]
        weights = [i.popularity * (STYLE_WEIGHT if i.style == style else 1.0) for i in fits]
        history: list[str] = []
        for _ in range(rng.randint(*history_len)):
            for _tries in range(50):
                pool, w = (items, [i.popularity for i in items]) if rng.random() < NOISE else (fits, weights)
                pick = rng.choices(pool, weights=w)[0].id
                if pick not in history:
                    history.append(pick)
                    break
        out[f"u{u:03d}"] = history
    return out


def split(histories: dict[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(train, test): the last HELD_OUT interactions of each user are the test."""
    return ({u: h[:-HELD_OUT] for u, h in histories.items()}, {u: h[-HELD_OUT:] for u, h in histories.items()})


def history_text(titles: list[str]) -> str:
    """What the models read for a user: the titles of their latest items, newest last."""
    return "liked: " + "; ".join(titles[-HISTORY:])


def training_rows(train: dict[str, list[str]], items: dict[str, Item], *, negatives: int,
                  validate_every: int, seed: int = 0) -> dict[str, list[dict]]:
    """The files llmos trains on, from the training interactions only.

    pairs-*: (history so far, next item) for the bi-encoder, every step of every history from the
    second item on; ranker-*: the same histories with the next item (label 1) and `negatives`
    items the user never took (label 0); with two or more, one is from the next item's category.
    Every `validate_every`-th user's last step goes to the *-eval files instead (each once)."""
    rng = random.Random(seed + 2)
    all_ids = sorted(items)
    out: dict[str, list[dict]] = {"pairs-train": [], "pairs-eval": [], "ranker-train": [], "ranker-eval": []}
    for n, (_user, ids) in enumerate(sorted(train.items())):
        seen = set(ids)
        for step in range(1, len(ids)):
            held = n % validate_every == 0 and step == len(ids) - 1
            query = history_text([items[i].title for i in ids[:step]])
            target = items[ids[step]]
            out["pairs-eval" if held else "pairs-train"].append({"query": query, "doc": target.text})
            same = [i for i in all_ids if items[i].category == target.category and i not in seen]
            other = [i for i in all_ids if i not in seen]
            hard = min(1, len(same)) if negatives >= 2 else 0  # one alone is drawn from anywhere
            picks = rng.sample(same, hard) + rng.sample(other, negatives - hard)
            rows = [{"history": query, "item": target.text, "label": "1"}]
            rows += [{"history": query, "item": items[i].text, "label": "0"} for i in picks]
            out["ranker-eval" if held else "ranker-train"].extend(rows)
    return out


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@dataclass(frozen=True)
class Sizes:
    items_per_category: int
    users: int
    history_len: tuple[int, int]
    negatives: int = 1  # balanced classes: with 2 (1 in 3 positive) MiniLM's ranker learnt only "no"
    validate_every: int = 5


FULL = Sizes(items_per_category=24, users=240, history_len=(6, 10))
SMALL = Sizes(items_per_category=10, users=90, history_len=(5, 8))


def generate(sizes: Sizes, seed: int = 0) -> dict:
    """The catalogue, the train/test interactions and the training files' rows."""
    items = catalogue(sizes.items_per_category, seed)
    by_id = {i.id: i for i in items}
    train, test = split(users(sizes.users, items, sizes.history_len, seed))
    rows = training_rows(train, by_id, negatives=sizes.negatives, validate_every=sizes.validate_every, seed=seed)
    return {"items": items, "train": train, "test": test, "rows": rows}


def write_all(folder: Path, data: dict) -> None:
    """folder/items.csv, interactions.csv (user, item, split) and the training files."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "items.csv", [{"id": i.id, "category": i.category, "style": i.style, "title": i.title,
                                      "text": i.text} for i in data["items"]])
    write_csv(folder / "interactions.csv",
              [{"user": u, "item": i, "split": name} for name in ("train", "test")
               for u, ids in data[name].items() for i in ids])
    for name, rows in data["rows"].items():
        write_csv(folder / f"{name}.csv", rows)
