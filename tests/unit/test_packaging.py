"""Packaging: every package the code imports is declared, and every extra a message names exists."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> dict[str, str]:
    """distribution -> where it is declared (`core` or the extra's name)."""
    out = {_name(r): "core" for r in PYPROJECT["dependencies"]}
    for extra, requirements in PYPROJECT["optional-dependencies"].items():
        for r in requirements:
            out.setdefault(_name(r), extra)
    return out


def _imported_modules() -> dict[str, str]:
    """Top-level third-party module -> a file importing it (imports and `require("pkg")` calls)."""
    found: dict[str, str] = {}
    for path in (ROOT / "src" / "llmos").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                names = [node.args[0].value]
            for name in names:
                top = name.split(".")[0]
                if top != "llmos" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    declared, dists = _declared(), packages_distributions()
    missing = []
    for module, where in sorted(_imported_modules().items()):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & declared.keys():
            missing.append(f"{module} (imported in {where}; installed by {sorted(names)})")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_every_extra_a_message_names_exists() -> None:
    extras = set(PYPROJECT["optional-dependencies"])
    named = {}
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        for extra in re.findall(r"llmos\[([a-z0-9_-]+)\]", path.read_text()):
            named.setdefault(extra, str(path.relative_to(ROOT)))
    unknown = {e: where for e, where in named.items() if e not in extras}
    assert not unknown, f"messages name extras pyproject.toml lacks: {unknown}"
    assert {"onnx", "hf", "postgres"} <= set(named)


def test_dev_installs_what_the_tests_need() -> None:
    dev = PYPROJECT["optional-dependencies"]["dev"]
    assert "llmos[onnx]" in dev  # the ONNX recipe and runtime are tested
    assert not {"onnx", "onnxruntime", "onnxscript"} & {_name(r) for r in PYPROJECT["dependencies"]}


def test_a_missing_optional_package_names_its_extra() -> None:
    import pytest

    from llmos._lazy import require
    from llmos.errors import DependencyError

    with pytest.raises(DependencyError) as caught:
        require("datasets_that_do_not_exist")
    assert "pip install datasets_that_do_not_exist" in caught.value.hint
    from llmos._lazy import _EXTRAS

    assert all(re.fullmatch(r"pip install 'llmos\[[a-z]+\]'", fix) for fix in _EXTRAS.values())
