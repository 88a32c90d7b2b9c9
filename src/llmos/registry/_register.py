"""Writing to the registry: new versions with lineage, alias moves and rollbacks."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from llmos import __version__
from llmos.errors import RegistryError
from llmos.registry._aliases import point_alias, pop_alias
from llmos.registry._lookup import all_versions, get_model, resolve
from llmos.registry._ref import ModelRef
from llmos.tracking._manifest import MANIFEST, sha256_file
from llmos.tracking._store import client as store_client
from llmos.tracking._store import mlflow_errors, quiet_downloads, resolve_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["MANIFEST_TAG", "register_model", "rollback", "set_alias"]

# sha256 of manifest.json, kept in the registry database: a copy in the artifact store whose weights
# and manifest were both rewritten still fails `fetch`.
MANIFEST_TAG = "llmos.manifest_sha256"


def register_model(*, name: str, run_id: str, artifact_uri: str, alias: str | None,
                   tags: dict[str, str], description: str | None = None,
                   tracking_uri: str | None = None) -> str:
    """Register the model folder at `artifact_uri` (from `Tracker.log_model_dir`) as a new version
    of `name`, tagged with its lineage; point `alias` at it. Returns the version number."""
    uri = resolve_uri(tracking_uri)
    client = store_client(uri)
    with mlflow_errors(uri, "the model registry"):
        lineage = {**tags, "run_id": run_id, "llmos.version": __version__,
                   MANIFEST_TAG: _manifest_digest(artifact_uri, uri)}
        _ensure_model(client, name)
        # The source is the artifact's own URI, not runs:/...: that is what MLflow's register_model
        # stores too, and an MLflow server accepts it only inside the run's artifact root.
        version = client.create_model_version(name, artifact_uri, run_id=run_id,
                                              tags={k: str(v) for k, v in lineage.items()},
                                              description=description)
        if alias:
            point_alias(client, name, alias, version.version)
    return str(version.version)


def set_alias(name: str, version: str, alias: str, tracking_uri: str | None = None) -> str | None:
    """Point `alias` at `version` of `name`, remembering where it pointed; returns that version."""
    uri = resolve_uri(tracking_uri)
    client = store_client(uri)
    with mlflow_errors(uri, "the model registry"):
        resolve(client, ModelRef(name, version=str(version)))  # a clear error for unknown versions
        return point_alias(client, name, alias, str(version))


def rollback(name: str, alias: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """Point `alias` back at the version it named before; returns (from_version, to_version)."""
    uri = resolve_uri(tracking_uri)
    client = store_client(uri)
    with mlflow_errors(uri, "the model registry"):
        get_model(client, name)
        existing = {str(v.version) for v in all_versions(client, name)}
        return pop_alias(client, name, alias, existing)


def _ensure_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _manifest_digest(artifact_uri: str, uri: str) -> str:
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="llmos-manifest-") as tmp, quiet_downloads():
        try:
            path = download_artifacts(artifact_uri=f"{artifact_uri.rstrip('/')}/{MANIFEST}",
                                      dst_path=tmp, tracking_uri=uri)
        except (MlflowException, OSError) as exc:
            raise RegistryError(f"{artifact_uri} has no readable {MANIFEST} ({exc}).",
                                hint="Log the model with Tracker.log_model_dir, then register "
                                     "the URI it returns.") from exc
        return sha256_file(Path(path))
