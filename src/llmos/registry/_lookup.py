"""Finding registered models and versions, with errors that list what does exist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.errors import RegistryError
from llmos.registry._ref import ModelRef

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

__all__ = ["all_models", "all_versions", "get_model", "resolve"]

_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_SHOWN = 20  # names listed in an error before "..."


def _listing(items: list[str]) -> str:
    if not items:
        return "none"
    more = f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == _NOT_FOUND


def all_models(client: MlflowClient) -> list[RegisteredModel]:
    models, token = [], None
    while True:
        page = client.search_registered_models(order_by=["name ASC"], page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            return models


def get_model(client: MlflowClient, name: str) -> RegisteredModel:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if not _not_found(exc):
            raise
    names = [m.name for m in all_models(client)]
    raise RegistryError(f"no registered model '{name}'. Registered: {_listing(names)}.",
                        hint="See them with: llmos models ls")


def all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of `name`, oldest first."""
    versions, token = [], None
    while True:
        page = client.search_model_versions(f"name = '{name}'", page_token=token)
        versions.extend(page)
        token = page.token
        if not token:
            return sorted(versions, key=lambda v: int(v.version))


def resolve(client: MlflowClient, ref: ModelRef) -> ModelVersion:
    """The version `ref` names: by number, through its alias, or the latest one."""
    from mlflow.exceptions import MlflowException

    model = get_model(client, ref.name)
    if ref.alias:
        # Looked up in the model's alias table: stores differ in the error an unknown alias raises.
        if ref.alias not in model.aliases:
            aliases = [f"{a} -> {v}" for a, v in sorted(model.aliases.items())]
            raise RegistryError(f"model '{ref.name}' has no alias '{ref.alias}'. "
                                f"Aliases: {_listing(aliases)}.",
                                hint=f"See them with: llmos models show {ref.name}")
        return client.get_model_version(ref.name, str(model.aliases[ref.alias]))
    if ref.version:
        try:
            return client.get_model_version(ref.name, ref.version)
        except MlflowException as exc:
            if not _not_found(exc):
                raise
    versions = all_versions(client, ref.name)
    if ref.version or not versions:
        what = f"no version {ref.version}" if ref.version else "no versions"
        raise RegistryError(f"model '{ref.name}' has {what}. Versions: "
                            f"{_listing([str(v.version) for v in versions])}.",
                            hint=f"See them with: llmos models show {ref.name}")
    return versions[-1]
