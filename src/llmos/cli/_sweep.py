"""Rendering a sweep: its trials as a table (`llmos jobs show SWEEP_ID`, `llmos run sweep.yaml`)."""

from __future__ import annotations

from typing import Any

__all__ = ["run_in_foreground", "trial_table"]

_COLOURS = {"complete": "green", "running": "cyan", "pruned": "yellow", "failed": "red"}


def trial_table(name: str, metric: str, trials: list[dict[str, Any]]) -> Any:
    """One row per trial: number, job (under a daemon), state, each searched value, the metric
    (a pruned or running trial's latest evaluation); the best trial is starred."""
    from rich.markup import escape
    from rich.table import Table

    params = list(trials[0]["params"]) if trials else []
    has_jobs = any(t.get("job_id") for t in trials)
    table = Table("trial", *(["job"] if has_jobs else []), "state", *params, metric,
                  title=f"sweep {escape(name)}", title_justify="left")
    for t in trials:
        colour = _COLOURS.get(t["state"], "white")
        value = "-" if t.get("value") is None else f"{t['value']:.4f}" + (" *" if t.get("best") else "")
        table.add_row(str(t["number"]), *([str(t.get("job_id") or "-")] if has_jobs else []),
                      f"[{colour}]{t['state']}[/]", *(_short(t["params"].get(p)) for p in params), value)
    return table


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_in_foreground(job: Any, file: Any, json_out: bool) -> None:
    """`llmos run sweep.yaml`: the sweep here, its trials as subprocesses; the table at the end."""
    from llmos.cli._render import console, print_json
    from llmos.errors import RunFailed
    from llmos.sweep import run_sweep

    say = (lambda _line: None) if json_out else (lambda line: console.print(line, markup=False))
    result = run_sweep(job, say=say)
    if json_out:
        if result["best"]:
            result["best"].pop("summary", None)
        print_json(result)
    else:
        console.print(trial_table(result["name"], result["metric"], result["trials"]))
        console.print(f"trial folders: {result['folder']}  study: {result['storage']}")
    if result["failed"]:
        raise RunFailed(f"sweep {result['name']} failed: {result['failed']}",
                        hint=f"Fix the cause and run it again (finished trials are kept): llmos run {file}")
    reg = result["registered"]
    if json_out:
        return
    if reg:
        console.print(f"next: llmos models show {reg['name']}")
    elif result["best"]:
        console.print(f"the best trial's model: {result['best']['run_dir']}/model   (register one with register: "
                      "{name, alias} in the sweep spec)")
