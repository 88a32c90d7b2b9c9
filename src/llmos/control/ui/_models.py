"""The models pages' data: registered models, one model's versions, lineage, compression reports.

Everything comes from the registry (`llmos.registry`) on the daemon's tracking URI; a compressed
child's figures are the tags it was registered with, and its Pareto plot is the `report/pareto.png`
artifact of the compression run that made it.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from llmos.control.ui._lineage import lineage_edges, lineage_svg

__all__ = ["ParetoCache", "family_edges", "mlflow_links", "model_page"]

_MAX_LOOKUPS = 20  # ancestors fetched one by one
_MAX_SCAN = 30  # a registry with more models is not scanned for children (each model is one query per version)

_REPORT_TAGS = ("recipe_label", "gate", "gate_reason", "metric_drop", "speedup", "latency_ratio", "size_ratio",
                "ppl_increase_pct", "speed_unit")


def mlflow_links(uri: str, name: str, version: str | None = None, run_id: str | None = None) -> dict[str, str]:
    """Links into the MLflow UI of a tracking server; none for a local store (it has no UI running)."""
    if not uri.startswith(("http://", "https://")):
        return {}
    base = uri.rstrip("/")
    links = {"model": f"{base}/#/models/{quote(name, safe='')}"}
    if version:
        links["version"] = f"{links['model']}/versions/{quote(version, safe='')}"
    if run_id:
        links["run"] = f"{base}/#/runs/{quote(run_id, safe='')}"
    return links


def model_page(name: str) -> dict[str, Any]:
    from llmos.control._db import redact
    from llmos.paths import tracking_uri
    from llmos.registry import show

    uri = tracking_uri()
    details = show(name)
    versions = [{**asdict(v), "links": mlflow_links(uri, name, v.version, v.run_id)} for v in details.versions]
    nodes = [f"{name}/{v['version']}" for v in versions]
    labels = {f"{name}/{v['version']}": ", ".join(v["aliases"]) or v["tags"].get("recipe_label", "") for v in versions}
    edges = family_edges(name, versions, labels)
    links = {node: f"/ui/models/{quote(node.rsplit('/', 1)[0], safe='')}" for edge in edges for node in edge
             if "/" in node and node.rsplit("/", 1)[0] != name}
    reports: dict[str, list[dict[str, Any]]] = {}  # compression run -> its children here
    for v in versions:
        if v["tags"].get("recipe_label") and v["tags"].get("parent_name"):
            reports.setdefault(v["run_id"], []).append(
                {"version": v["version"], "parent": f"{v['tags']['parent_name']}/{v['tags'].get('parent_version')}",
                 **{k: v["tags"].get(k, "") for k in _REPORT_TAGS}})
    return {"name": name, "description": details.description, "aliases": details.aliases,
            "alias_history": details.alias_history, "versions": list(reversed(versions)),
            "lineage_svg": lineage_svg(nodes, edges, labels, links), "reports": reports,
            "links": mlflow_links(uri, name), "tracking_uri": redact(uri)}


def family_edges(name: str, versions: list[dict[str, Any]], labels: dict[str, str]) -> list[tuple[str, str]]:
    """This model's lineage edges, plus its ancestors in other models (followed up, at most
    _MAX_LOOKUPS versions) and its children in other models (in a registry of at most _MAX_SCAN models)."""
    from llmos.errors import LlmosError
    from llmos.registry import list_models, show

    edges = lineage_edges(name, versions)
    seen = {f"{name}/{v['version']}" for v in versions}
    todo = [parent for parent, _ in edges if "/" in parent and parent not in seen]
    for _ in range(_MAX_LOOKUPS):
        if not todo:
            break
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        try:
            (found,) = show(ref).versions
        except (LlmosError, ValueError):  # deleted, or not a NAME/VERSION: the node stays, unexplored
            continue
        labels[ref] = ", ".join(found.aliases) or found.tags.get("recipe_label", "")
        more = lineage_edges(ref.rsplit("/", 1)[0], [{"version": found.version, "tags": found.tags}])
        edges += more
        todo += [parent for parent, _ in more if "/" in parent]
    models = [m.name for m in list_models() if m.name != name]
    if len(models) <= _MAX_SCAN:
        for other in models:
            for v in show(other).versions:
                if v.tags.get("parent_name") == name and v.tags.get("parent_version"):
                    edges.append((f"{name}/{v.tags['parent_version']}", f"{other}/{v.version}"))
                    labels[f"{other}/{v.version}"] = ", ".join(v.aliases) or v.tags.get("recipe_label", "")
    return edges


class ParetoCache:
    """A compression run's Pareto plot, fetched from the artifact store once and kept (a few runs)."""

    def __init__(self, keep: int = 32) -> None:
        self.keep = keep
        self._plots: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, name: str, run_id: str) -> bytes | None:
        """The plot of `run_id`, if it made a version of `name` and logged one; None otherwise."""
        from llmos.registry import show

        if run_id in self._plots:
            return self._plots[run_id]
        if run_id not in {v.run_id for v in show(name).versions}:
            return None
        plot = _download(run_id)
        if plot is not None:
            with self._lock:
                if len(self._plots) >= self.keep:
                    self._plots.pop(next(iter(self._plots)))
                self._plots[run_id] = plot
        return plot


def _download(run_id: str) -> bytes | None:
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from llmos.paths import tracking_uri

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = download_artifacts(run_id=run_id, artifact_path="report/pareto.png", dst_path=tmp,
                                      tracking_uri=tracking_uri())
        except (MlflowException, OSError):
            return None
        return Path(path).read_bytes()
