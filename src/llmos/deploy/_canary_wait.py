"""Waiting for a canary's verdict from outside the daemon (a pipeline's deploy stage, a script).

A deploy with a `canary:` section answers at once, while the canary runs; this polls the
deployment until the canary was promoted or rolled back and gives its final status.
"""

from __future__ import annotations

import time
from typing import Any

from llmos.deploy._errors import DeployError

__all__ = ["wait_canary"]


def wait_canary(client: Any, name: str, timeout_s: float = 3600.0, poll_s: float = 1.0) -> dict[str, Any]:
    """The canary of deployment `name` once it ended: a dict with `state` (promoted, rolled_back),
    `verdict` (why, with the figures), `figures`, `step`, `steps`. `client` is an `llmos.Client`.
    DeployError if the deployment runs no canary or it is still undecided after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        canary = client.deployment(name).canary
        if canary is None:
            raise DeployError(f"deployment '{name}' runs no canary.",
                              hint="Deploy a new version with a canary: section (or --canary 10%) first.")
        if canary["state"] != "watching":
            return canary
        if time.monotonic() > deadline:
            raise DeployError(f"the canary of deployment '{name}' is still undecided after {timeout_s:g} s: "
                              f"{canary['verdict']}", hint=f"Decide by hand: llmos deploy promote|rollback {name}")
        time.sleep(poll_s)
