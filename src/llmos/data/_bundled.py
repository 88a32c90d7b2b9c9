"""Datasets shipped inside the package (`llmos/datasets/NAME/`), found with importlib.resources so
they work from a wheel as well as from a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from llmos.errors import DataError

__all__ = ["bundled_dataset_path"]


def _root() -> Path:
    # The package is installed as plain files (setuptools package-data), never zipped.
    return Path(str(resources.files("llmos") / "datasets"))


def bundled_dataset_path(name: str = "support-intents") -> Path:
    """The folder of a bundled dataset (train.csv, test.csv, README.md); `-` and `_` are the same."""
    root = _root()
    folder = root / name.replace("-", "_")
    if not folder.is_dir():
        known = sorted(p.name.replace("_", "-") for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DataError(f"no bundled dataset named '{name}'.",
                        hint=f"Bundled datasets: {', '.join(known) or 'none'}.")
    return folder
