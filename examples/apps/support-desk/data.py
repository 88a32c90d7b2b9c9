"""The support desk's data: which intents have an answer template, and the files llmos trains on.

Everything comes from what llmos ships (the hand-written `support-intents` messages, Apache-2.0) and
from `faq.json` beside this file (the FAQ, written for this app). `split_*` are pure functions of
rows; `write_all` is the thin shell that reads the inputs and writes the CSV files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
NONE = "none"  # the label of a message no template covers
# The intents the desk answers with a template. product_question is left to the FAQ (retrieval)
# and complaint to a person: the intent model never sees them, so it must learn to be unsure.
COVERED = ("account_access", "cancel_subscription", "change_shipping_address", "order_status",
           "payment_problem", "refund_request")
CALIB_EVERY = 5  # every 5th covered training message is held back to choose the threshold
UNCOVERED_EVERY = 4  # every 4th uncovered training message joins it (about the share of the test set)


def split_intents(train: list[dict], test: list[dict]) -> dict[str, list[dict]]:
    """{intents-train, intents-eval, calib, test} from support-intents' rows; uncovered labels become `none`."""
    out: dict[str, list[dict]] = {"intents-train": [], "calib": [], "test": []}
    covered_seen = uncovered_seen = 0
    for row in train:
        if row["label"] in COVERED:
            covered_seen += 1
            out["calib" if covered_seen % CALIB_EVERY == 0 else "intents-train"].append(_desk_row(row))
        else:
            uncovered_seen += 1
            if uncovered_seen % UNCOVERED_EVERY == 0:
                out["calib"].append(_desk_row(row))
    out["test"] = [_desk_row(row) for row in test]
    out["intents-eval"] = [row for row in out["calib"] if row["label"] != NONE]  # what llmos train reports
    return out


def _desk_row(row: dict) -> dict:
    """text, the desk's label (an intent with a template, or `none`) and the message's own intent."""
    return {"text": row["text"], "label": row["label"] if row["label"] in COVERED else NONE,
            "intent": row["label"]}


def faq_doc(entry: dict) -> str:
    """What the retriever indexes for one FAQ entry: its question and its answer."""
    return f"{entry['question']} {entry['answer']}"


def split_faq(faq: list[dict]) -> dict[str, list[dict]]:
    """(query, doc) pairs: the question and asks 0 and 2 train the embedder; asks 1 and 3 measure it.

    faq-check holds one held-out ask per entry: llmos's own recall@1 counts a query right only at its
    own row, so an entry must appear once there."""
    out: dict[str, list[dict]] = {"faq-train": [], "faq-eval": [], "faq-check": []}
    for entry in faq:
        doc = faq_doc(entry)
        out["faq-train"].append({"query": entry["question"], "doc": doc, "id": entry["id"]})
        for i, ask in enumerate(entry["asks"]):
            out["faq-train" if i % 2 == 0 else "faq-eval"].append({"query": ask, "doc": doc, "id": entry["id"]})
        out["faq-check"].append(out["faq-eval"][-2])
    return out


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def load_faq() -> list[dict]:
    return json.loads((HERE / "faq.json").read_text(encoding="utf-8"))


def write_all(folder: Path) -> dict[str, list[dict]]:
    """Write every split as folder/NAME.csv and return them."""
    from llmos.data import bundled_dataset_path

    source = bundled_dataset_path("support-intents")
    splits = split_intents(read_csv(source / "train.csv"), read_csv(source / "test.csv"))
    splits.update(split_faq(load_faq()))
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        write_csv(folder / f"{name}.csv", rows)
    return splits
