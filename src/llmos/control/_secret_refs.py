"""Secret references in a spec, as pure functions: where `${secret:NAME}` is used (only in `env`
values), the env with the values put in at launch, and the stored spec as others see it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

__all__ = ["HIDDEN", "NAME", "REF", "masked_spec", "references", "resolve_env", "valid_name"]

NAME = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
REF = re.compile(r"\$\{secret:([^}]*)\}")
_NAME = re.compile(rf"^{NAME}$")
HIDDEN = "***"


def valid_name(name: str) -> bool:
    return _NAME.match(name) is not None


def references(model: BaseModel) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(uses, problems): each (`env.KEY`, NAME) a spec's env values reference, and each misplaced or
    malformed reference as (dotted field, message)."""
    uses: list[tuple[str, str]] = []
    problems: list[tuple[str, str]] = []
    for key, text, in_env in _strings(model.model_dump(mode="json", by_alias=True), ""):
        for name in REF.findall(text):
            if not _NAME.match(name):
                problems.append((key, f"'${{secret:{name}}}' is not a secret name (letters, digits, _)"))
            elif not in_env:
                problems.append((key, f"'${{secret:{name}}}': secrets may be referenced only in env values, "
                                      "where the job reads them from its environment"))
            else:
                uses.append((key, name))
    return uses, problems


def _strings(value: Any, key: str) -> Iterator[tuple[str, str, bool]]:
    """(dotted key, string, whether it is an env value) for every string in a dumped spec."""
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{key}.{k}" if key else str(k)
            if k == "env" and isinstance(v, dict):
                for name, text in v.items():
                    yield from [(f"{sub}.{name}", text, True)] if isinstance(text, str) else _strings(text, sub)
            else:
                yield from _strings(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{key}.{i}")
    elif isinstance(value, str):
        yield key, value, False


def resolve_env(env: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """`env` with every `${secret:NAME}` replaced by its value (every name is in `values`). Pure."""
    return {k: REF.sub(lambda m: values[m.group(1)], v) for k, v in env.items()}


def masked_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The stored spec as a viewer who is neither its owner nor an admin sees it: `env` values that are
    not secret references become `***` (they may hold API keys written in plain text), and so does the
    password of any URL (`tracking.uri: http://user:pass@mlflow`)."""
    from llmos.control._db import redact

    def mask(value: Any, parent: str = "") -> Any:
        if isinstance(value, dict):
            if parent == "env":
                return {k: v if isinstance(v, str) and REF.fullmatch(v) else HIDDEN for k, v in value.items()}
            return {k: mask(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        return redact(value) if isinstance(value, str) and "://" in value else value

    return mask(spec)
