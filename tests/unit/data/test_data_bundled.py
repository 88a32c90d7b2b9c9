"""The bundled support-intents dataset loads with the documented counts and labels."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from llmos.data import bundled_dataset_path, load_dataset
from llmos.errors import DataError
from llmos.spec import DataSpec

INTENTS = ["account_access", "cancel_subscription", "change_shipping_address", "complaint",
           "order_status", "payment_problem", "product_question", "refund_request"]
TRAIN_COUNTS = {"account_access": 67, "cancel_subscription": 68, "change_shipping_address": 66,
                "complaint": 67, "order_status": 75, "payment_problem": 70, "product_question": 74,
                "refund_request": 72}
TEST_COUNTS = {"account_access": 17, "cancel_subscription": 17, "change_shipping_address": 17,
               "complaint": 17, "order_status": 19, "payment_problem": 18, "product_question": 19,
               "refund_request": 18}


@pytest.fixture(scope="module")
def bundled():
    folder = bundled_dataset_path()
    spec = DataSpec(train=str(folder / "train.csv"), eval=str(folder / "test.csv"))
    return load_dataset(spec, "classification")


def test_folder_holds_the_files():
    folder = bundled_dataset_path("support-intents")
    assert {"train.csv", "test.csv", "README.md"} <= {p.name for p in folder.iterdir()}
    assert bundled_dataset_path("support_intents") == folder


def test_counts_and_labels(bundled):
    assert bundled.label_names == INTENTS
    assert Counter(INTENTS[i] for i in bundled.train.labels) == TRAIN_COUNTS
    assert Counter(INTENTS[i] for i in bundled.eval.labels) == TEST_COUNTS
    assert (len(bundled.train), len(bundled.eval)) == (559, 142)


def test_readme_table_matches_the_files(bundled):
    readme = (bundled_dataset_path() / "README.md").read_text()
    for intent in INTENTS:
        row = re.search(rf"\| `{intent}` \|[^|]*\| (\d+) \| (\d+) \|", readme)
        assert row and (int(row[1]), int(row[2])) == (TRAIN_COUNTS[intent], TEST_COUNTS[intent])


def test_no_duplicates_within_or_across_splits(bundled):
    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()

    train = [norm(t) for t in bundled.train.texts]
    held = [norm(t) for t in bundled.eval.texts]
    assert len(set(train)) == len(train) and len(set(held)) == len(held)
    assert not set(train) & set(held)


def test_unknown_bundled_name_lists_the_known_ones():
    with pytest.raises(DataError) as info:
        bundled_dataset_path("sentiment")
    assert "support-intents" in info.value.hint
