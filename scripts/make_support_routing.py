"""Write llmos/datasets/support_routing/ (train.jsonl, test.jsonl) from support_intents' CSV files.

Deterministic: the same input files give the same bytes. Every customer message is one the llmos team
wrote by hand for support_intents (see its README); this script only wraps each in a routing
instruction, in one of a few wordings, as a chat conversation (`messages`) or, for every fourth row, as a
prompt/completion pair, so both forms the SFT recipe reads are shipped. The answer is the team's name.

    python scripts/make_support_routing.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "llmos" / "datasets"
TEAMS = ["account_access", "cancel_subscription", "change_shipping_address", "complaint", "order_status",
         "payment_problem", "product_question", "refund_request"]
SYSTEM = ("You route customer messages for a kitchen-and-home shop to one team: " + ", ".join(TEAMS)
          + ". Answer with the team name only.")
ASKS = ["Route this message: {}", "Which team should answer this? {}", "Customer message: {}",
        "Send to the right team: {}"]


def rows(split: str) -> list[dict]:
    with (ROOT / "support_intents" / f"{split}.csv").open(newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    out = []
    for i, record in enumerate(records):
        ask = ASKS[i % len(ASKS)].format(record["text"].strip())
        if i % 4 == 3:
            out.append({"prompt": f"{SYSTEM}\n{ask}", "completion": record["label"]})
        else:
            out.append({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask},
                                     {"role": "assistant", "content": record["label"]}]})
    return out


def main() -> None:
    folder = ROOT / "support_routing"
    folder.mkdir(exist_ok=True)
    for split in ("train", "test"):
        lines = [json.dumps(row, ensure_ascii=False) for row in rows(split)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{folder / f'{split}.jsonl'}: {len(lines)} rows")


if __name__ == "__main__":
    main()
