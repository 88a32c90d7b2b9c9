"""`llmos up | down | status | top`: the control plane's daemon from the shell.

The other control-plane commands live in `jobs.py` (submit, jobs, logs, cancel), `tokens.py`
and `deploy.py`; `register` adds them all. Each parses, calls `llmos.control`, renders.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import JsonFlag, console, print_json


def register(app: typer.Typer) -> None:
    from llmos.cli import deploy, jobs, tokens

    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(top)
    jobs.register(app)
    app.add_typer(tokens.app, name="tokens")
    deploy.register(app)


def up(
    port: Annotated[int | None, typer.Option(help="REST API port (0: any free port)", show_default="8470")] = None,
    host: Annotated[str | None, typer.Option(help="address to bind", show_default="127.0.0.1")] = None,
    db: Annotated[str | None, typer.Option(help="state database: postgresql://USER@HOST:PORT/DB or sqlite:///PATH",
                                           show_default="SQLite under LLMOS_HOME")] = None,
    db_password_file: Annotated[Path | None, typer.Option(
        help="a 0600 file holding the database password (or set LLMOS_DB_PASSWORD; never put it in --db)")] = None,
    cpus: Annotated[int | None, typer.Option(help="cores jobs may use", show_default="all")] = None,
    reserve_cpus: Annotated[int | None, typer.Option(help="cores kept for the system", show_default="0")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPU indices jobs may use, e.g. 0,1", show_default="all")] = None,
    policy: Annotated[str | None, typer.Option(help="fifo, priority, fair or full", show_default="full")] = None,
    interval_s: Annotated[float | None, typer.Option(help="scheduling interval in seconds",
                                                     show_default="0.5")] = None,
    grace_s: Annotated[float | None, typer.Option(help="seconds between SIGTERM and SIGKILL",
                                                  show_default="30")] = None,
    retry_base_s: Annotated[float | None, typer.Option(help="first retry delay; doubles per failure",
                                                       show_default="2")] = None,
    config: Annotated[Path | None, typer.Option(help="configuration file",
                                                show_default="LLMOS_HOME/control.yaml")] = None,
    ray: Annotated[str | None, typer.Option(help="run jobs on this Ray cluster, HEAD:6379 (docs/cluster.md)",
                                            show_default="this machine only")] = None,
    storage: Annotated[str | None, typer.Option(help="with --ray: a folder every node sees at this path")] = None,
    tracking: Annotated[str | None, typer.Option(help="MLflow tracking server URL for every job and deployment",
                                                 show_default="SQLite under LLMOS_HOME")] = None,
    tls_cert: Annotated[str | None, typer.Option(help="serve HTTPS with this certificate (PEM)",
                                                 show_default="self-signed beyond loopback")] = None,
    tls_key: Annotated[str | None, typer.Option(help="the key of --tls-cert (PEM)")] = None,
    insecure_http: Annotated[bool | None, typer.Option(
        "--insecure-http", help="serve plain HTTP on a non-loopback --host (tokens readable on the network)")] = None,
    isolation: Annotated[str | None, typer.Option(help="auto, users, sandbox, none or trusted (docs/security.md)",
                                                  show_default="auto")] = None,
) -> None:
    """Start the control plane in the background (REST API, scheduler, executor)."""
    from llmos.control import load_config
    from llmos.control import up as start
    from llmos.control._paths import admin_token_file, daemon_log

    gpu_list = None if gpus is None else [int(g) for g in gpus.split(",") if g.strip()]
    cfg = load_config(config, port=port, host=host, db=db, cpus=cpus, reserve_cpus=reserve_cpus, gpus=gpu_list,
                      policy=policy, interval_s=interval_s, grace_s=grace_s, retry_base_s=retry_base_s, ray=ray,
                      storage=storage, tracking=tracking, tls_cert=tls_cert, tls_key=tls_key,
                      insecure_http=insecure_http, isolation=isolation,
                      db_password_file=str(db_password_file.expanduser().resolve()) if db_password_file else None)
    info, started = start(cfg)
    word = "[green]up[/]" if started else "[yellow]already running[/]"
    console.print(f"control plane {word} at {info['url']} (pid {info['pid']})")
    console.print(f"  bound to  {info.get('bind', info['url'])} over {info.get('scheme', 'http').upper()}")
    if info.get("tls"):
        console.print(f"  TLS       {info['tls']['cert']}" + (" (self-signed)" if info["tls"]["self_signed"] else ""))
        console.print(f"  SHA-256   {info['tls']['fingerprint']}\n            (other machines: llmos login "
                      f"{info['scheme']}://HOST:{info['port']} --fingerprint THAT)", soft_wrap=True,
                      emoji=False)  # a fingerprint's ":CD:" is no emoji
    console.print(f"  state     {info['db']}\n  token     {admin_token_file()} (admin)\n  log       {daemon_log()}\n"
                  f"  API docs  {info['url']}/docs")
    for warning in _warnings(info):
        console.print(f"[yellow]{warning}[/]")
    console.print("next: llmos submit job.yaml   (or: llmos status)")


def down(timeout_s: Annotated[float, typer.Option(help="how long to wait for it to stop")] = 120.0) -> None:
    """Stop the control plane; running jobs checkpoint and resume at the next `llmos up`."""
    from llmos.control import down as stop

    info = stop(timeout_s)
    console.print(f"control plane stopped (pid {info['pid']}).\nnext: llmos up   (queued jobs wait until then)")


def status(json_out: JsonFlag = False) -> None:
    """Whether the control plane runs, on what machine, and what it manages."""
    from llmos.control import Client, running
    from llmos.control._remote import load_login

    remote = os.environ.get("LLMOS_ADDRESS") or load_login()
    if not remote and running() is None:
        if json_out:
            print_json({"running": False})
        else:
            console.print("control plane: [red]not running[/]\nnext: llmos up")
        raise typer.Exit(1)
    with Client.local() as client:
        s = client.status()
    if json_out:
        print_json({"running": True, **s})
        return
    inv = s["inventory"]
    gpus = ", ".join(f"{g['index']}: {g['name']} ({_gb(g['memory_gb'])})" for g in inv["gpus"]) or "none"
    console.print(f"control plane: [green]running[/] at {s['url']} (pid {s['pid']}, up "
                  f"{_age(s['started_s'])}, policy {s['policy']})")
    console.print(f"  state    {s['db']}\n  machine  {inv['cpus']} cores {inv['cores']}, {inv['memory_gb']} GB, "
                  f"GPUs: {gpus}")
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(s["counts"].items())) or "none yet"
    console.print(f"  jobs     {counts}")
    console.print(f"  serving  {s.get('scheme', 'http').upper()} on {s.get('bind', s['url'])}"
                  + (f", certificate SHA-256 {s['tls']['fingerprint']}" if s.get("tls") else ""), soft_wrap=True,
                  emoji=False)
    console.print(f"  isolation {s.get('isolation', 'trusted')}")
    for warning in _warnings(s):
        console.print(f"[yellow]{warning}[/]")
    for d in s["deployments"]:
        console.print(f"  deployment {d['name']}: {d.get('model', '')} {d.get('ready', '?')}/{d.get('desired', '?')} "
                      f"replicas ready at {d.get('url', '?')}"
                      + (f"; {d['waiting']} waiting for free cores" if d.get("waiting") else ""))
    console.print("next: llmos jobs ls   (or: llmos top)")


def _warnings(info: dict) -> list[str]:
    from llmos.control._isolation import describe

    out = []
    if info.get("insecure_http"):
        out.append(f"WARNING: plain HTTP on {info.get('bind')} (--insecure-http): tokens cross the network readable.")
    if info.get("isolation") in ("none", "trusted"):
        out.append(describe(info["isolation"]))
    return out


def top(
    once: Annotated[bool, typer.Option(help="print one view and exit")] = False,
    interval_s: Annotated[float, typer.Option(help="refresh period")] = 1.0,
    json_out: Annotated[bool, typer.Option("--json", help="print one view as JSON and exit (for scripts)")] = False,
) -> None:
    """A live view of the machine (cores, memory, GPUs) and of which job holds what."""
    from rich.live import Live

    from llmos.control import Client

    with Client.local() as client:
        if json_out:
            print_json(client.top())
            return
        if once:
            console.print(_top_view(client.top()))
            return
        with Live(_top_view(client.top()), console=console, refresh_per_second=4) as live:
            try:
                while True:
                    time.sleep(interval_s)
                    live.update(_top_view(client.top()))
            except KeyboardInterrupt:
                pass


def _top_view(view: dict):  # -> rich renderable
    from rich.console import Group
    from rich.table import Table

    cores = Table("core", "use", "job", title="cores", title_justify="left")
    for c in view["cores"]:
        pct = c["percent"]
        bar = "" if pct is None else f"{'█' * int(pct / 10):<10} {pct:5.1f}%"
        cores.add_row(str(c["id"]), bar, c["job"] or "-")
    m = view["memory"]
    memory = f"memory: {m['used_gb']} / {m['total_gb']} GB used; {m['reserved_by_jobs_gb']} of " \
             f"{m['schedulable_gb']} GB reserved by jobs"
    gpus = Table("gpu", "name", "util", "memory", "job", title="GPUs", title_justify="left")
    for g in view["gpus"]:
        util = "?" if g["util_percent"] is None else f"{g['util_percent']:.0f}%"
        used = "?" if g["memory_used_gb"] is None else f"{g['memory_used_gb']}/{_gb(g['memory_gb'])}"
        gpus.add_row(str(g["index"]), g["name"], util, used, g["job"] or "-")
    jobs = Table("job", "name", "owner", "state", "cores", "gpus", title="holders", title_justify="left")
    for j in view["jobs"]:
        jobs.add_row(j["id"], j["name"], j["owner"], j["state"], _ranges(j["cores"]), _ranges(j["gpus"]) or "-")
    parts = [cores, memory] + ([gpus] if view["gpus"] else []) + [jobs]
    if view.get("nodes"):  # cluster mode: the cluster's nodes first; the rest is this (head) machine
        nodes = Table("node", "address", "cpus held", "memory held", "gpus held", "jobs",
                      title="cluster nodes (Ray)", title_justify="left")
        for n in view["nodes"]:
            h = n["held"]
            nodes.add_row(n["name"][:12], n["address"], f"{h['cpus']}/{n['cpus']}",
                          f"{h['memory_gb']:g}/{n['memory_gb']:g} GB", f"{h['gpus']}/{len(n['gpus'])}",
                          ",".join(h["jobs"]) or "-")
        parts = [nodes, "this machine (the head):", *parts]
    return Group(*parts)


def _ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    out, ids = [], sorted(ids)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


def _age(since_s: float) -> str:
    s = max(0, time.time() - since_s)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def _gb(value: float | None) -> str:
    """A GPU's memory as nvidia-smi reported it; some report none ([N/A])."""
    return "memory unknown" if value is None else f"{value} GB"
