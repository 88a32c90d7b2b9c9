"""Room for a deployment replica on a cluster of hosts (cluster mode): what each host holds, the host a
replica goes to (spread across nodes, then the freest), and a replica no node could ever hold. Pure."""

from __future__ import annotations

import json

from llmos.control._capacity import Held, Need, held_by, place_on_hosts, too_big_anywhere
from llmos.executor import Gpu, Inventory


def _host(name: str, cpus: int, memory_gb: float = 16.0, gpus: int = 0) -> Inventory:
    return Inventory(tuple(range(cpus)), memory_gb, tuple(Gpu(i, "A100", None) for i in range(gpus)), name=name,
                     address=f"10.0.0.{len(name)}", pin=False)


def test_what_a_host_holds_counts_only_the_workers_and_replicas_placed_on_it() -> None:
    job = json.dumps({"workers": [{"node": "a", "cores": [0, 1], "gpus": [0], "memory_gb": 2.0},
                                  {"node": "b", "cores": [0], "gpus": [], "memory_gb": 1.0}]})
    pins = [{"node": "b", "cores": [1], "gpus": [], "memory_gb": 3.0}, {"cores": [5], "gpus": [], "memory_gb": 1.0}]
    assert held_by([job], pins, "a") == Held(frozenset({0, 1}), 2.0, frozenset({0}))
    assert held_by([job], pins, "b") == Held(frozenset({0, 1}), 4.0, frozenset())
    assert held_by([job], pins) == Held(frozenset({5}), 1.0, frozenset())  # no node named: the local host


def test_a_replica_goes_where_its_deployment_has_fewest_then_to_the_freest_host() -> None:
    hosts = (_host("a", 4), _host("b", 4), _host("c", 2))
    held = {"a": Held(frozenset({0})), "b": Held()}
    host, cores, gpus = place_on_hosts(hosts, held, Need(2), {"a": 0, "b": 0, "c": 0})
    assert (host.name, cores, gpus) == ("b", [0, 1], [])  # b has 4 free cores, a 3
    host, cores, _ = place_on_hosts(hosts, held, Need(2), {"b": 1})
    assert (host.name, cores) == ("a", [1, 2])  # spread: a and c have none of its replicas, a is freer
    host, _, _ = place_on_hosts(hosts, held, Need(2), {"a": 1, "b": 1})
    assert host.name == "c"


def test_a_replica_waits_when_no_host_has_room_and_is_refused_when_none_ever_could() -> None:
    hosts = (_host("a", 2), _host("b", 2, gpus=1))
    full = {"a": Held(frozenset({0, 1})), "b": Held(frozenset({0}))}
    assert place_on_hosts(hosts, full, Need(2), {}) == "2 free core(s) on one node"
    assert place_on_hosts((), {}, Need(1), {}) == "a node to join the cluster"
    host, cores, gpus = place_on_hosts(hosts, {}, Need(1, gpus=1), {})
    assert (host.name, cores, gpus) == ("b", [0], [0])
    assert too_big_anywhere(hosts, Need(2, 8.0, 1)) is None
    assert too_big_anywhere((), Need(64)) is None  # a node may still join
    why = too_big_anywhere(hosts, Need(3))
    assert why is not None and "no node of the cluster's 2" in why and "the largest: 2 cores" in why
