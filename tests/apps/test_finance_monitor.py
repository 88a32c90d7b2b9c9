"""examples/apps/finance-monitor: its decisions on literals, its state and intake, then the whole app
on the tiny model, including a monitor killed with SIGKILL mid-stream and started again."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "finance-monitor"


def _load(name: str) -> ModuleType:
    # Under its own name: support-desk's test puts modules called data/measure/report on sys.path too.
    spec = importlib.util.spec_from_file_location(f"finance_monitor_{name}", APP / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rules = _load("rules")
state = _load("state")
intake = _load("intake")
data = _load("data")
CFG = rules.Rules(window=4, min_items=3, level_below=-0.3, level_clear=0.0, drop_recent=2, drop_by=1.0,
                  drop_clear=0.5, burst_last=3, burst_negatives=2, burst_clear=0)


def _items(company: str, labels: str) -> list[dict]:
    names = {"-": "negative", "0": "neutral", "+": "positive"}
    return [{"id": f"{company}{i}", "company": company, "label": names[c]} for i, c in enumerate(labels)]


def test_level_fires_once_per_episode_and_needs_a_recovery_to_fire_again() -> None:
    cfg = rules.Rules(**{**CFG.__dict__, "burst_negatives": 99, "drop_by": 99.0})
    # the mean of the last 4: too few, too few, -1/3 (fires), -0.5, -0.75, -0.5 (open: silent), 0 (clears),
    # 0.5, 0.5, 0 (not below the bar), -0.5 (fires again)
    alerts = rules.replay(_items("A", "00---+++---"), cfg)
    assert [(a["id"], a["headline"]) for a in alerts] == [("A/level/1", "A2"), ("A/level/2", "A10")]
    assert alerts[0]["value"] == -0.333
    # a level wobbling just under and over the bar (never back to level_clear) is one episode
    assert [a["id"] for a in rules.replay(_items("B", "0-0-0-0-"), cfg)] == ["B/level/1"]


def test_drop_and_burst_and_companies_apart() -> None:
    only = {"level_below": -99.0}
    # drop: the window before the last 2 averages 1, the last 2 average -0.5 or less
    drops = rules.replay(_items("C", "+++0-"), rules.Rules(**{**CFG.__dict__, **only, "burst_negatives": 99}))
    assert [(a["id"], a["value"]) for a in drops] == [("C/drop/1", 1.5)]
    bursts = rules.replay(_items("D", "--0+0--"), rules.Rules(**{**CFG.__dict__, **only, "drop_by": 99.0}))
    assert [(a["id"], a["headline"]) for a in bursts] == [("D/burst/1", "D1"), ("D/burst/2", "D6")]
    # a burst needs no minimum history; two companies' negatives never add up
    mixed = [x for pair in zip(_items("E", "-0-"), _items("F", "-0-"), strict=True) for x in pair]
    assert {a["id"] for a in rules.replay(mixed, CFG) if a["rule"] == "burst"} == {"E/burst/1", "F/burst/1"}
    assert rules.measures([1.0, -1.0], CFG) == {"level": None, "drop": None, "burst": 1.0}


def test_state_keeps_logs_to_the_last_commit_and_reads_whole_lines(tmp_path: Path) -> None:
    store = state.Store(tmp_path / "state")
    s = store.load()
    store.append(s, "scored", [{"id": "a"}])
    store.commit(s)
    store.append(s, "scored", [{"id": "b"}])  # written, then killed before the commit
    again = store.load()
    assert again["sizes"]["scored"] == 12 and store.log_path("scored").read_text() == '{"id": "a"}\n'
    stream = tmp_path / "stream.jsonl"
    stream.write_bytes(b'{"x": 1}\n{"x": 2}\n{"x": 3')  # the last line is still being written
    lines, end = state.read_new(stream, 0, 10)
    assert lines == [(0, b'{"x": 1}'), (9, b'{"x": 2}')] and end == 18
    assert state.read_new(stream, 9, 1) == ([(9, b'{"x": 2}')], 18)


def test_intake_appends_valid_headlines_and_names_bad_fields(tmp_path: Path) -> None:
    stream = tmp_path / "stream.jsonl"
    server = intake.serve(intake.Appender(stream), {"ready": True}, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        ok = httpx.post(f"{url}/headlines", json=[{"id": "x1", "company": "Acme", "text": "Acme beats estimates"},
                                                   {"company": "Acme", "text": "Acme files report"}])
        assert ok.status_code == 202 and ok.json()["accepted"] == 2
        rows = [json.loads(line) for line in stream.read_text().splitlines()]
        assert rows[0]["id"] == "x1" and rows[1]["id"].startswith("web-") and rows[0]["sent_at"] > 0
        bad = httpx.post(f"{url}/headlines", json=[{"company": "", "text": "t", "ticker": "ACM"}])
        assert bad.status_code == 422
        assert "headlines[0].ticker: unknown field" in bad.json()["error"]
        assert "headlines[0].company: expected a non-empty string" in bad.json()["error"]
        assert httpx.post(f"{url}/headlines", content=b"{oops").status_code == 400
        assert httpx.get(f"{url}/status").json() == {"ready": True}
        assert len(stream.read_text().splitlines()) == 2  # nothing refused was written
    finally:
        server.shutdown()


def test_the_held_out_templates_stay_out_of_training() -> None:
    train, test = data.make_split(1, 300), data.make_split(3, 300, held_out_share=0.5)
    assert all(r["seen_template"] for r in train)
    unseen = {r["template"] for r in test if not r["seen_template"]}
    assert unseen and not unseen & {r["template"] for r in train}
    assert not {r["company"] for r in train} & set(data.NEW_COMPANIES)
    assert data.make_stream(4, 50) == data.make_stream(4, 50)  # seeded: the same stream every time


def test_a_second_monitor_on_the_same_state_is_refused(tmp_path: Path) -> None:
    argv = [sys.executable, str(APP / "monitor.py"), "--stream", str(tmp_path / "s.jsonl"), "--state",
            str(tmp_path / "state"), "--model-url", "http://127.0.0.1:9", "--port", "0"]
    first = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        while not (tmp_path / "state" / "ready.json").exists():  # an empty stream: it never asks the model
            assert first.poll() is None
            time.sleep(0.05)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "another monitor is running on" in second.stderr
    finally:
        first.kill()
        first.wait()


@pytest.mark.timeout(900)
def test_the_monitor_runs_end_to_end_and_survives_a_kill(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(APP / "finance.py"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kill/restart" in done.stdout
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["accuracy"]["n"] == 200 and r["accuracy"]["seen_templates"] > 0.5  # chance is 1/3
    lat = r["latency"]
    assert lat["headlines"] == 300 and lat["alerts"] >= 1 and lat["alert_p95_s"] < 5.0
    check = r["restart"]
    killed = check["killed"]
    # killed mid-stream for real: some headlines labelled before, more arriving while it was down
    assert 0 < killed["committed_offset"] <= killed["file_bytes"] and 0 < killed["labelled"] < 300
    assert killed["bytes_arrived_while_down"] > 0
    assert (check["labelled"], check["lost"], check["labelled_twice"]) == (300, 0, 0)
    assert check["alerts_received"] >= 1 and check["alerts_received_twice"] == 0
    assert check["same_as_uninterrupted"] is True
    assert (tmp_path / "sentiment.png").read_bytes()[:4] == b"\x89PNG"
