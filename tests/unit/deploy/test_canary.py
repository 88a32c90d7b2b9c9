"""Canary promotion's pure parts with literals: the verdict, the weighted pick, the mirror sample,
the figures a step is judged on, and the spec's `canary:` section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmos.deploy._canary import CanaryFigures, canary_replicas, decide_canary, parse_canary_percent
from llmos.deploy._route_table import RouteTable
from llmos.deploy._routes import Route, RouteSet, decode_report, decode_routes, encode_report, encode_routes
from llmos.deploy._split import Split, labels_of, pick_revision, should_mirror
from llmos.deploy._version_figures import VersionCounts, VersionFigures, p95_ms, window
from llmos.spec import CanarySpec, ServeJob

SPEC = CanarySpec(steps=[10, 50, 100], interval_s=30, min_requests=20, max_error_rate=0.05, max_p95_ms=500,
                  max_latency_ratio=2.0, max_disagreement=0.1)
GOOD = VersionFigures(requests=40, errors=0, p95_ms=20.0, compared=30, differed=1)
STABLE = VersionFigures(requests=400, errors=0, p95_ms=18.0)


def figures(canary: VersionFigures = GOOD, age_s: float = 31.0, failures: int = 0) -> CanaryFigures:
    return CanaryFigures(canary, STABLE, age_s, failures)


def test_a_good_step_moves_on_and_the_last_one_promotes() -> None:
    first = decide_canary(figures(), SPEC, 0)
    assert first.action == "next" and "to 50%" in first.reason and "40 requests" in first.reason
    assert decide_canary(figures(), SPEC, 1).action == "next"
    last = decide_canary(figures(), SPEC, 2)
    assert last.action == "promote" and "step 3 of 3 (100%)" in last.reason


@pytest.mark.parametrize(("canary", "age_s", "waiting"), [
    (VersionFigures(requests=5, p95_ms=20.0), 31.0, "5 of 20 requests"),
    (GOOD, 12.0, "12 of 30 s"),
    (VersionFigures(requests=40, p95_ms=20.0, compared=3), 31.0, "3 of 20 compared answers"),
])
def test_a_step_holds_until_it_has_seen_enough(canary: VersionFigures, age_s: float, waiting: str) -> None:
    decision = decide_canary(figures(canary, age_s), SPEC, 0)
    assert decision.action == "hold" and waiting in decision.reason


@pytest.mark.parametrize(("canary", "named"), [
    (VersionFigures(requests=40, errors=3, p95_ms=20.0), "error rate 7.5% (3 of 40 requests) above max_error_rate"),
    (VersionFigures(requests=40, p95_ms=600.0), "p95 latency 600 ms above max_p95_ms 500"),
    (VersionFigures(requests=40, p95_ms=40.0), "2.22x the current version's 18 ms, above max_latency_ratio 2"),
    (VersionFigures(requests=40, p95_ms=20.0, compared=20, differed=20), "100.0% of compared answers (20 of 20)"),
])
def test_a_crossed_bound_rolls_back_at_once_naming_figure_and_bound(canary: VersionFigures, named: str) -> None:
    decision = decide_canary(figures(canary, age_s=1.0), SPEC, 0)  # no need to wait out the step
    assert decision.action == "rollback" and named in decision.reason


def test_bounds_wait_for_their_sample_and_unset_ones_are_not_judged() -> None:
    few = VersionFigures(requests=4, errors=4, p95_ms=9000.0, compared=4, differed=4)
    assert decide_canary(figures(few), SPEC, 0).action == "hold"
    loose = CanarySpec(min_requests=20, interval_s=0)  # no latency or disagreement bounds
    assert decide_canary(figures(VersionFigures(requests=40, p95_ms=9000.0, compared=40, differed=40)), loose,
                         0).action == "next"


def test_new_replicas_that_keep_dying_roll_back() -> None:
    assert decide_canary(figures(VersionFigures(), failures=3), SPEC, 0).action == "rollback"


def test_the_weighted_pick_holds_its_share_over_any_run_of_requests() -> None:
    split = Split("old#1", "new#2", 0.1)
    picks = [pick_revision(split, n) for n in range(1000)]
    assert picks.count("new#2") == 100
    assert all(picks[i:i + 20].count("new#2") in (1, 2, 3) for i in range(0, 980, 20))  # spread, not bunched
    assert [pick_revision(split, n) for n in range(1000)] == picks  # deterministic
    assert {pick_revision(Split("a", "b", 1.0), n) for n in range(50)} == {"b"}
    assert {pick_revision(Split("a", "b", 0.0), n) for n in range(50)} == {"a"}
    assert sum(pick_revision(Split("a", "b", 0.5), n) == "b" for n in range(1000)) == 500


def test_the_mirror_sample_takes_exactly_its_fraction() -> None:
    assert [should_mirror(0.25, n) for n in range(8)] == [False, False, False, True, False, False, False, True]
    assert sum(should_mirror(0.3, n) for n in range(100)) == 30
    assert not any(should_mirror(0.0, n) for n in range(100)) and all(should_mirror(1.0, n) for n in range(10))


def test_labels_are_read_from_a_classify_answer_in_input_order() -> None:
    body = b'{"data": [{"index": 1, "label": "neg"}, {"index": 0, "label": "pos"}]}'
    assert labels_of(body) == ["pos", "neg"]
    assert labels_of(b'{"error": "x"}') is None and labels_of(b"not json") is None


def test_a_step_is_judged_on_what_changed_since_it_began() -> None:
    before, now = VersionCounts(), VersionCounts()
    for _ in range(10):
        before.answered(200, 0.010)
    now.buckets = list(before.buckets)
    now.requests = before.requests
    for _ in range(19):
        now.answered(200, 0.100)
    now.answered(503, 0.002)
    now.failed()
    now.compared_labels(["a", "b", "c"], ["a", "x", "c"])
    f = window(before, now)
    assert (f.requests, f.errors, f.compared, f.differed) == (21, 2, 3, 1)
    assert 100 <= f.p95_ms <= 125  # the bucket holding 0.1 s: at most 25% high
    assert window(None, None) == VersionFigures() and p95_ms([0, 0]) is None


def test_replicas_of_the_new_version_follow_its_share() -> None:
    assert [canary_replicas(4, w) for w in (0.1, 0.5, 1.0)] == [1, 2, 4]
    assert canary_replicas(1, 0.1) == 1 and canary_replicas(3, 0.34) == 2


def test_the_cli_percent_becomes_steps() -> None:
    assert parse_canary_percent("10%") == [10, 50, 100]
    assert parse_canary_percent("60") == [60, 100] and parse_canary_percent("100%") == [100]
    assert parse_canary_percent("5,25,100") == [5, 25, 100]
    with pytest.raises(ValueError, match="like 10%"):
        parse_canary_percent("ten")


def test_the_spec_section_is_checked_and_does_not_change_the_revision() -> None:
    from llmos.deploy._replica import revision_of

    for steps in ([50, 10, 100], [10, 50], [0, 100]):
        with pytest.raises(ValidationError, match=r"canary\.steps"):
            ServeJob.model_validate({"model": "tiny@prod", "canary": {"steps": steps}})
    with pytest.raises(ValidationError, match=r"canary\.max_error_rate"):
        ServeJob.model_validate({"model": "tiny@prod", "canary": {"max_error_rate": 2}})
    plain = ServeJob(model="tiny/2")
    assert revision_of(plain) == revision_of(plain.model_copy(update={"canary": CanarySpec()}))


def test_the_front_splits_by_revision_falls_back_and_reports_per_revision() -> None:
    routes = (Route("r1", 40001, "old#1", True, False), Route("r2", 40002, "new#2", True, False))
    split = Split("old#1", "new#2", 0.5, mirror_fraction=1.0)
    table = RouteTable()
    table.apply(decode_routes(encode_routes(RouteSet("demo", 5.0, routes, split))))
    picked = [table.acquire_routed(frozenset(), mirrorable=True) for _ in range(10)]
    assert sum(p.revision == "new#2" for p in picked) == 5
    assert all(p.mirror == (p.revision == "new#2") for p in picked)
    assert table.acquire_mirror()[0] == "r1"  # copies go to the current version
    # The new version's replica is not ready: its share goes to the current one, no request fails.
    table.apply(RouteSet("demo", 5.0, (routes[0], Route("r2", 40002, "new#2", True, True)), split))
    assert {table.acquire_routed(frozenset()).replica_id for _ in range(10)} == {"r1"}
    table.answered("new#2", 200, 0.02)
    table.failed("new#2")
    report = decode_report(encode_report(table.report(pid=7)))
    assert (report.versions["new#2"].requests, report.versions["new#2"].errors) == (2, 1)


def test_the_front_exports_each_revisions_figures_and_the_split() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from llmos.deploy._front_metrics import FrontMetrics

    table = RouteTable()
    table.apply(RouteSet("demo", 5.0, (Route("r1", 40001, "old#1", True, False),), Split("old#1", "new#2", 0.1)))
    table.answered("new#2", 500, 0.01)
    table.answered("new#2", 200, 0.01)
    table.compared("new#2", ["pos", "neg"], ["pos", "pos"])
    got = {(s.name, tuple(s.labels.values())): s.value for family in
           text_string_to_metric_families(FrontMetrics(table).render()[0].decode()) for s in family.samples}
    assert got[("llmos_front_version_requests_total", ("new#2",))] == 2
    assert got[("llmos_front_version_errors_total", ("new#2",))] == 1
    assert (got[("llmos_front_version_compared_total", ("new#2",))],
            got[("llmos_front_version_differed_total", ("new#2",))]) == (2, 1)
    share = "llmos_front_version_share"
    assert (got[(share, ("new#2",))], got[(share, ("old#1",))]) == (0.1, 0.9)
