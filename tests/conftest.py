"""Shared fixtures: an isolated LLMOS_HOME, small real datasets and a tiny model folder."""

from __future__ import annotations

import csv
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._mlflow_server import mlflow_server  # noqa: F401  (a session fixture: one server for every module)

if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("COLUMNS") == "80":
    # pytest-xdist starts its workers with COLUMNS=80; a Rich console made on import would keep that
    # width, and the tests that run the CLI in-process with a wider COLUMNS would see cut tables.
    del os.environ["COLUMNS"]

POSITIVE = ["great", "wonderful", "loved", "excellent", "fantastic", "superb", "moving", "delightful"]
NEGATIVE = ["terrible", "awful", "hated", "boring", "bad", "horrible", "tedious", "dull"]
FRAMES = ["the movie was {}", "i thought it {} overall", "this film is {}", "honestly a {} story",
          "what a {} cast and plot", "the ending felt {} to me", "{} acting from everyone"]
_ACCOUNTS_BEFORE = pytest.StashKey[tuple[set[str], set[str]]]()  # llmos-* users and groups at the start


@pytest.fixture(autouse=True)
def llmos_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("llmos-home")
    monkeypatch.setenv("LLMOS_HOME", str(home))
    monkeypatch.delenv("LLMOS_TRACKING_URI", raising=False)
    # The suite's data and outputs live in pytest's 0700 temp folders, which another user cannot
    # reach: its daemons run jobs as themselves. tests/security runs the isolation for real.
    monkeypatch.setenv("LLMOS_ISOLATION", "trusted")
    # A login saved on this machine (llmos login) or an address in the shell is not the test's daemon.
    monkeypatch.setenv("LLMOS_CONFIG_DIR", str(home / "client-config"))
    for name in ("LLMOS_ADDRESS", "LLMOS_TOKEN", "LLMOS_CA_CERT"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(autouse=True)
def llmos_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """llmos's cache folder (the empty tracking store it copies into each new home) is the run's
    own, shared by the xdist workers, not the user's ~/.cache/llmos."""
    cache = _run_folder(tmp_path_factory) / "llmos-cache"
    monkeypatch.setenv("LLMOS_CACHE_DIR", str(cache))
    monkeypatch.setenv("LLMOS_RUNTIME_DIR", str(runtime_folder(tmp_path_factory)))
    return cache


def runtime_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the warm fork servers (llmos._forkserver) of this run listen; they end when it goes."""
    runtime = _run_folder(tmp_path_factory) / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return runtime


def _run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's temporary folder, the same for every pytest-xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _sentiment_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        word = rng.choice(POSITIVE if label else NEGATIVE)
        rows.append((rng.choice(FRAMES).format(word), "positive" if label else "negative"))
    return rows


@pytest.fixture(scope="session")
def sentiment_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small two-class review set (train 200, test 40) with a header `text,label`."""
    folder = tmp_path_factory.mktemp("sentiment")
    paths = []
    for name, n, seed in (("train.csv", 200, 0), ("test.csv", 40, 1)):
        path = folder / name
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(_sentiment_rows(n, seed))
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="session")
def no_dropout_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT folder without dropout, so runs split differently can match exactly."""

    import torch
    from transformers import BertConfig, BertModel

    from llmos.models import minilm_path

    folder = tmp_path_factory.mktemp("tiny-bert-nodrop")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path() / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """SmolLM2-135M-Instruct converted from GGUF once for the run (~15 s): LLMOS_MODEL_CACHE points
    every test's home, and every CLI process a test starts, at this one cache. Under pytest-xdist the
    workers share it (the conversion is locked and atomic: one converts, the others wait and read)."""
    from llmos.models import smollm2_path

    cache = _run_folder(tmp_path_factory) / "model-cache"
    cache.mkdir(exist_ok=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("LLMOS_MODEL_CACHE", str(cache))
    yield smollm2_path()
    patch.undo()


def _llmos_accounts() -> tuple[set[str], set[str]]:
    import grp
    import pwd

    return ({u.pw_name for u in pwd.getpwall() if u.pw_name.startswith("llmos-")},
            {g.gr_name for g in grp.getgrall() if g.gr_name.startswith("llmos-")})


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_xdist_worker(session.config):
        session.config.stash[_ACCOUNTS_BEFORE] = _llmos_accounts()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The OS users and groups `llmos-*` that isolation tests made (a root daemon makes one per project,
    and keeps it, as it should) are removed when the run ends, by the process that ran the session (the
    controller under pytest-xdist, whose workers may still use them until then): the machine is left as
    found."""
    import subprocess

    if not _is_xdist_worker(session.config):  # the run's fork servers see their sockets go and end
        runtime = _run_folder(session.config._tmp_path_factory) / "runtime"  # type: ignore[attr-defined]
        shutil.rmtree(runtime, ignore_errors=True)
    before = session.config.stash.get(_ACCOUNTS_BEFORE, None)
    if before is None or _is_xdist_worker(session.config) or os.geteuid() != 0:
        return
    users, groups = _llmos_accounts()
    for name in sorted(users - before[0]):
        subprocess.run(["userdel", name], capture_output=True, check=False)
    for name in sorted(groups - before[1]):
        subprocess.run(["groupdel", name], capture_output=True, check=False)
