"""Confined spec paths: every path a spec names must resolve, after `..` and symlinks, under a folder
its project may use, or the submission is refused (422) naming the field and the folders.

The folders of project P: `LLMOS_HOME/projects/P` (and `STORAGE/projects/P` in cluster mode), the run
folders llmos gave P's jobs (`runs/NAME-ID`), and the roots an admin added (`llmos roots add P PATH`).

Which strings are paths is decided by walking the spec model, not by a list of fields: a field typed
`Path` always is; any other string is when it looks like one (absolute, `~`, a `..` part, `./`, or a
`sqlite:///` / `file:` URI). Registry references (`name@alias`, `name/3`), hub ids (`org/model`),
`hf:` datasets and `http(s)://` URIs are not paths. A command job's `run` (its argv) and `env` are
not checked: they are the program's own business, which isolation confines, not the daemon's.
An admin's submission is not confined: an admin may add any root anyway.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from llmos.errors import SpecError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from llmos.control._auth import Caller

__all__ = ["allowed_roots", "as_path", "check_paths", "default_roots", "outside", "resolve", "root_problem",
           "run_folders", "spec_paths"]

# A command's argv and environment (the program's own business), and free text. Named with their model,
# so that a field called `run` or `env` elsewhere (a stage's spec) is still walked.
_NOT_PATHS = frozenset({("CommandJob", "run"), ("CommandJob", "env"), ("*", "description")})
# In a raw mapping (a pipeline stage's spec, not yet a model) the keys whose string values the spec
# loader reads as files, relative to the daemon's folder when the stage becomes a job.
_FILE_KEYS = frozenset({"train", "eval", "test", "calib", "teacher", "output", "cwd"})
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")  # one folder name; never `..`


def spec_paths(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted field, path as written) for every value of `model` that names a file or folder."""
    for name, field in type(model).model_fields.items():
        if (type(model).__name__, name) in _NOT_PATHS or ("*", name) in _NOT_PATHS:
            continue
        key = f"{prefix}{field.alias or name}"
        yield from _walk(getattr(model, name), key, _is_path_type(field.annotation))


def _walk(value: Any, key: str, typed_path: bool, file_key: bool = False) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        yield from spec_paths(value, key + ".")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{key}.{k}", typed_path, k in _FILE_KEYS)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk(v, f"{key}.{i}", typed_path)
    elif isinstance(value, os.PathLike):
        yield key, os.fspath(value)
    elif isinstance(value, str):
        path = as_path(value, typed_path, file_key)
        if path is not None:
            yield key, path


def as_path(value: str, typed_path: bool = False, file_key: bool = False) -> str | None:
    """The file-system path a spec string names, or None when it names something else. `file_key`: the
    string is a file key's value in a raw mapping (a stage's spec), where a relative name is a path too."""
    if value.startswith("sqlite:///"):
        return value.removeprefix("sqlite:///") or None  # sqlite:////abs, sqlite:///relative
    if value.startswith("file:"):
        return re.sub(r"^file:(//)?", "", value) or None
    if typed_path:
        return value
    if (_URI.match(value) and not value.startswith("~")) or value.startswith("${"):  # hf:, http://; ${stages.X.model}
        return None
    parts = value.split("/")
    if value.startswith(("/", "~", "./")) or value == "." or ".." in parts or file_key:
        return value
    return None


def _is_path_type(annotation: Any) -> bool:
    if annotation is Path or (isinstance(annotation, type) and issubclass(annotation, os.PathLike)):
        return True
    return any(_is_path_type(a) for a in typing.get_args(annotation))


def outside(paths: list[tuple[str, Path]], roots: list[Path]) -> list[tuple[str, Path]]:
    """The (field, resolved path) pairs under none of `roots` (all already resolved). Pure."""
    return [(field, path) for field, path in paths if not any(path == r or r in path.parents for r in roots)]


def resolve(path: str, base: Path) -> Path:
    """`path` as the job would open it: `~` and relative to `base`, then `..` and every symlink followed."""
    p = Path(os.path.expanduser(path))  # `~nobody` stays as written (Path.expanduser would raise)
    return Path(os.path.realpath(p if p.is_absolute() else base / p))


def default_roots(project: str) -> list[Path]:
    """The project's own folders under LLMOS_HOME and, in cluster mode, under the shared storage."""
    from llmos.paths import project_dir, storage

    if not _SEGMENT.match(project):  # `../control` must not name a folder of the daemon's
        return []
    roots = [project_dir(project)]
    shared = storage()
    if shared is not None:
        roots.append(shared / "projects" / project)
    return roots


def check_paths(conn: Connection, caller: Caller, job: BaseModel, project: str) -> None:
    """Refuse `job` (422) if a path it names resolves outside the folders `project` may use."""
    if caller.is_admin:
        return
    found = list(spec_paths(job))
    if not found:
        return
    nul = [(field, "a path cannot hold a NUL byte") for field, path in found if "\x00" in path]
    if nul:
        raise SpecError("the spec names a path with a NUL byte:", problems=nul)
    base = _base(job)
    resolved = [(field, resolve(path, base)) for field, path in found]
    roots = [Path(os.path.realpath(r)) for r in allowed_roots(conn, project)]
    bad = outside(resolved, roots + run_folders(conn, project, [p for _, p in resolved]))
    if bad:
        written = dict(found)
        problems = [root_problem(field, written[field], path, project, roots) for field, path in bad]
        raise SpecError(f"the spec names {len(bad)} path(s) outside the folders project {project} may use:",
                        problems=problems,
                        hint=f"Put the files under {roots[0] if roots else 'an added root'}, or ask an admin "
                             f"to run: llmos roots add {project} FOLDER")


def root_problem(field: str, written: str, path: Path, project: str, roots: list[Path]) -> tuple[str, str]:
    where = "" if written == str(path) else f" (resolves to {path})"
    return field, (f"{written!r}{where} is outside project {project}'s folders: "
                   f"{', '.join(str(r) for r in roots)}, and the run folders of its jobs")


def _base(job: BaseModel) -> Path:
    """The folder a relative path in `job` is opened from: its working folder or run folder."""
    from llmos.paths import home, runs_dir

    for name in ("cwd", "output"):
        value = getattr(job, name, None)
        if value:
            return Path(os.path.expanduser(value))
    return runs_dir() / str(getattr(job, "name", "job")) if hasattr(job, "output") else home()


def allowed_roots(conn: Connection, project: str) -> list[Path]:
    """The folders `project`'s spec paths may be under besides its jobs' run folders: the defaults and
    the roots an admin added."""
    from sqlalchemy import select

    from llmos.control._schema import project_roots

    added = conn.execute(select(project_roots.c.path).where(project_roots.c.project == project)
                         .order_by(project_roots.c.path)).scalars()
    return [*default_roots(project), *(Path(p) for p in added)]


def run_folders(conn: Connection, project: str, paths: list[Path]) -> list[Path]:
    """The run folders llmos made for `project`'s jobs that hold one of `paths` (one query over the
    paths' ancestors, however many jobs the project has run)."""
    from sqlalchemy import select

    from llmos.control._schema import jobs

    ancestors = sorted({str(a) for p in paths for a in (p, *p.parents)})
    return [Path(r) for r in conn.execute(select(jobs.c.run_dir).distinct().where(
        jobs.c.project == project, jobs.c.run_dir.in_(ancestors))).scalars()]
