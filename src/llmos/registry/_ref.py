"""Model references: `name` (latest version), `name@alias`, `name/3`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmos.errors import RegistryError

__all__ = ["ModelRef", "parse_ref"]

# The same spelling RegisterSpec accepts for names and aliases.
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)"
                  r"(?:@(?P<alias>[A-Za-z][A-Za-z0-9_-]*)|/(?P<version>[1-9][0-9]*))?$")
_FORMS = "NAME (latest version), NAME@ALIAS (e.g. sentiment@production) or NAME/VERSION (e.g. sentiment/3)"


@dataclass(frozen=True)
class ModelRef:
    """A registered model, optionally narrowed to one version or to the version an alias names."""

    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}/{self.version}" if self.version else self.name


def parse_ref(text: str) -> ModelRef:
    """Parse `name`, `name@alias` or `name/3` (a leading `models:/` is accepted too)."""
    raw = text.strip()
    match = _REF.match(raw.removeprefix("models:/"))
    if not match:
        raise RegistryError(f"'{text}' is not a model reference.",
                            hint=f"Write {_FORMS}; see the names with: llmos models ls")
    return ModelRef(match["name"], version=match["version"], alias=match["alias"])
