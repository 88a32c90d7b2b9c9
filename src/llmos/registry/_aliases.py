"""Aliases with memory: every move of an alias is pushed on a stack kept as a registered-model tag
(`llmos.alias_history.<alias>`, a JSON list of versions), so `rollback` can pop back to the version
the alias named before. MLflow itself keeps only the current target."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from llmos.errors import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["HISTORY_TAG", "history", "point_alias", "pop_alias"]

HISTORY_TAG = "llmos.alias_history."
_KEEP = 100  # moves remembered per alias; a tag value holds up to 100,000 characters


def history(tags: dict[str, str], alias: str) -> list[str]:
    try:
        versions = json.loads(tags.get(HISTORY_TAG + alias, "[]"))
    except ValueError:  # a hand-edited tag: start a fresh history rather than fail
        return []
    return [str(v) for v in versions] if isinstance(versions, list) else []


def _save(client: MlflowClient, name: str, alias: str, versions: list[str]) -> None:
    client.set_registered_model_tag(name, HISTORY_TAG + alias, json.dumps(versions[-_KEEP:]))


def point_alias(client: MlflowClient, name: str, alias: str, version: str) -> str | None:
    """Point `alias` at `version` and push it on the history; return the version it left."""
    from mlflow.exceptions import MlflowException

    model = client.get_registered_model(name)
    previous = model.aliases.get(alias)
    stack = history(model.tags, alias)
    # An alias moved outside llmos (MLflow UI, another client) still counts as a step back.
    if previous is not None and (not stack or stack[-1] != str(previous)):
        stack.append(str(previous))
    try:
        client.set_registered_model_alias(name, alias, version)
    except MlflowException as exc:
        if exc.error_code != "INVALID_PARAMETER_VALUE":
            raise
        raise RegistryError(f"cannot set alias '{alias}' on {name}/{version}: {exc.message}",
                            hint="Aliases start with a letter and use letters, digits, _ and -; "
                                 "'latest' and v<number> are reserved by MLflow.") from exc
    if not stack or stack[-1] != str(version):
        stack.append(str(version))
    _save(client, name, alias, stack)
    return None if previous is None else str(previous)


def pop_alias(client: MlflowClient, name: str, alias: str, existing: set[str]) -> tuple[str, str]:
    """Point `alias` back at the version it named before the current one; return (from, to)."""
    model = client.get_registered_model(name)
    current = model.aliases.get(alias)
    if current is None:
        raise RegistryError(f"model '{name}' has no alias '{alias}' to roll back.",
                            hint=f"See its aliases with: llmos models show {name}")
    current = str(current)
    stack = history(model.tags, alias)
    # Drop the current target, then any deleted versions: the step back must land on a real one.
    while stack and (stack[-1] == current or stack[-1] not in existing):
        stack.pop()
    if not stack:
        raise RegistryError(f"alias '{alias}' of '{name}' has no earlier version to roll back to "
                            f"(it has only pointed at version {current}).",
                            hint=f"Point it at a version explicitly: llmos models alias {name} VERSION {alias}")
    client.set_registered_model_alias(name, alias, stack[-1])
    _save(client, name, alias, stack)
    return current, stack[-1]
