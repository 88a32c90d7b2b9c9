"""Reading the registry: what models exist, and everything known about one of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmos.registry._aliases import HISTORY_TAG, history
from llmos.registry._lookup import all_models, all_versions, get_model, resolve
from llmos.registry._ref import ModelRef, parse_ref
from llmos.tracking._store import client as store_client
from llmos.tracking._store import mlflow_errors, resolve_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

__all__ = ["ModelDetails", "ModelSummary", "VersionInfo", "list_models", "show"]


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: str | None
    version_count: int
    aliases: dict[str, str]
    description: str
    updated_ms: int


@dataclass(frozen=True)
class VersionInfo:
    version: str
    aliases: list[str]
    created_ms: int
    source: str
    run_id: str
    status: str
    description: str
    tags: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)  # latest values in the source run


@dataclass(frozen=True)
class ModelDetails:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, str]
    alias_history: dict[str, list[str]]  # alias -> versions it named, oldest first
    versions: list[VersionInfo]  # all of them for a bare name; the one named by `name@a`/`name/3`
    ref: ModelRef


def list_models(tracking_uri: str | None = None) -> list[ModelSummary]:
    """Every registered model, by name."""
    uri = resolve_uri(tracking_uri)
    client = store_client(uri)
    with mlflow_errors(uri, "the model registry"):
        out = []
        for model in all_models(client):
            versions = all_versions(client, model.name)
            out.append(ModelSummary(
                name=model.name, latest_version=str(versions[-1].version) if versions else None,
                version_count=len(versions), aliases={a: str(v) for a, v in model.aliases.items()},
                description=model.description or "", updated_ms=model.last_updated_timestamp or 0))
        return out


def show(ref: str | ModelRef, tracking_uri: str | None = None) -> ModelDetails:
    """A model's aliases, alias history and tags, with its versions (or just the one `ref` names),
    each with lineage tags, source and the metrics of the run that made it."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    uri = resolve_uri(tracking_uri)
    client = store_client(uri)
    with mlflow_errors(uri, "the model registry"):
        model = get_model(client, ref.name)
        picked = [resolve(client, ref)] if ref.alias or ref.version else all_versions(client, ref.name)
        aliases = {a: str(v) for a, v in model.aliases.items()}
        by_version: dict[str, list[str]] = {}
        for alias, version in sorted(aliases.items()):
            by_version.setdefault(version, []).append(alias)
        return ModelDetails(
            name=model.name, description=model.description or "",
            tags={k: v for k, v in model.tags.items() if not k.startswith(HISTORY_TAG)},
            aliases=aliases,
            alias_history={k.removeprefix(HISTORY_TAG): history(model.tags, k.removeprefix(HISTORY_TAG))
                           for k in sorted(model.tags) if k.startswith(HISTORY_TAG)},
            versions=[_info(client, v, by_version.get(str(v.version), [])) for v in picked],
            ref=ref)


def _info(client: MlflowClient, mv: ModelVersion, aliases: list[str]) -> VersionInfo:
    return VersionInfo(
        version=str(mv.version), aliases=aliases, created_ms=mv.creation_timestamp or 0,
        source=mv.source or "", run_id=mv.run_id or "", status=mv.status or "",
        description=mv.description or "", tags=dict(mv.tags), metrics=_run_metrics(client, mv.run_id))


def _run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return {}
    try:
        metrics = client.get_run(run_id).data.metrics
    except MlflowException:  # the run was deleted; the version still stands on its own
        return {}
    # System metrics describe the machine, not the model.
    return {k: v for k, v in sorted(metrics.items()) if not k.startswith("system/")}
