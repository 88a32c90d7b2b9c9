"""Where the Ray DDP gap comes from (issue 13.8): a gloo all-reduce of DDP-sized gradients between two
processes on loopback (what two local workers use) and between the two network namespaces of the test
cluster (what a worker on each Ray node uses: two veth pairs and a bridge), on the same 2 cores.

    .venv/bin/python benchmarks/cluster_allreduce.py [--mb 90] [--rounds 10]

Each pair of processes runs `--rounds` all-reduces of one float32 tensor of `--mb` MB (MiniLM-L6's
gradients are ~90 MB), one intra-op thread each as the DDP benchmark's workers, after two warm-up
rounds; the figure is the median milliseconds per all-reduce. Optionally the same with the bytes in
bfloat16 (what DDP's bf16 compression hook would send). A JSON record goes to
benchmarks/out/cluster_allreduce.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import OUT, REPO, machine
from tests.cluster._testcluster import start_cluster

WORKER = r"""
import statistics, sys, time
import torch, torch.distributed as dist
rank, addr, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
mb, rounds, dtype = float(sys.argv[4]), int(sys.argv[5]), getattr(torch, sys.argv[6])
torch.set_num_threads(1)
began = time.perf_counter()
dist.init_process_group("gloo", init_method=f"tcp://{addr}:{port}", rank=rank, world_size=2)
rendezvous_s = time.perf_counter() - began
t = torch.ones(int(mb * 2**20 / torch.empty(0, dtype=dtype).element_size()), dtype=dtype)
for _ in range(2):
    dist.all_reduce(t)
took = []
for _ in range(rounds):
    dist.barrier()
    start = time.perf_counter()
    dist.all_reduce(t)
    took.append(time.perf_counter() - start)
if rank == 0:
    print(f"{statistics.median(took) * 1000:.1f} {rendezvous_s:.2f}")
dist.destroy_process_group()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def pair(commands: tuple[list[str], list[str]], addr: str, mb: float, rounds: int, dtype: str) -> tuple[float, float]:
    """(median ms per all-reduce, seconds rank 0 took in init_process_group) for two processes: rank 0
    started by commands[0], rank 1 by commands[1]."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([*prefix, sys.executable, "-c", WORKER, str(rank), addr, str(port), str(mb),
                               str(rounds), dtype], env=env, stdout=subprocess.PIPE, text=True)
             for rank, prefix in enumerate(commands)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"an all-reduce process failed: {[p.returncode for p in procs]}")
    ms, rendezvous_s = outs[0].split()
    return float(ms), float(rendezvous_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=90.0, help="MB of float32 gradients per all-reduce")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    # A SIGTERM (timeout, kill) unwinds like Ctrl-C, so the cluster and daemons below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="llmos-allreduce-") as tmp:
        cluster = start_cluster(["n1", "n2"], storage=Path(tmp))
        try:
            n1, n2 = cluster.nodes["n1"], cluster.nodes["n2"]
            ns = (cluster.command_on("n1", []), cluster.command_on("n2", []))
            rows = {}
            for dtype, mb in (("float32", args.mb), ("bfloat16", args.mb / 2)):
                (loop_ms, loop_init_s), (across_ms, across_init_s) = (
                    pair(([], []), "127.0.0.1", mb, args.rounds, dtype), pair(ns, n1, mb, args.rounds, dtype))
                rows[dtype] = {"loopback_ms": loop_ms, "across_nodes_ms": across_ms, "mb": mb,
                               "loopback_rendezvous_s": loop_init_s, "across_nodes_rendezvous_s": across_init_s}
                rows[dtype]["ratio"] = rows[dtype]["across_nodes_ms"] / rows[dtype]["loopback_ms"]
            record = {"machine": machine(), "cluster_mode": cluster.mode, "nodes": {"n1": n1, "n2": n2},
                      "rounds": args.rounds, "all_reduce": rows}
        finally:
            cluster.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cluster_allreduce.json").write_text(json.dumps(record, indent=2))
    print(f"machine: {record['machine']} ({record['cluster_mode']})")
    for dtype, row in rows.items():
        print(f"all-reduce of {row['mb']:.0f} MB ({dtype}): loopback {row['loopback_ms']:.1f} ms, "
              f"across the two nodes {row['across_nodes_ms']:.1f} ms ({row['ratio']:.2f}x); init_process_group "
              f"{row['loopback_rendezvous_s']:.2f} s on loopback, {row['across_nodes_rendezvous_s']:.2f} s across")
    print(f"record: {(OUT / 'cluster_allreduce.json').relative_to(REPO)}")


if __name__ == "__main__":
    main()
