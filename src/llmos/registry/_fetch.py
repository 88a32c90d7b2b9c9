"""`fetch`: a registered version's model folder on local disk, verified before anyone loads it."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from llmos import paths
from llmos.errors import RegistryError
from llmos.registry._lookup import resolve
from llmos.registry._ref import ModelRef, parse_ref
from llmos.registry._register import MANIFEST_TAG
from llmos.tracking._manifest import MANIFEST, sha256_file, verify_manifest
from llmos.tracking._store import client as store_client
from llmos.tracking._store import mlflow_errors, resolve_uri

__all__ = ["fetch"]

_log = logging.getLogger(__name__)


def fetch(ref: str | ModelRef, dest: Path | None = None, tracking_uri: str | None = None) -> Path:
    """Download the version `ref` names to `dest` (default `$LLMOS_HOME/cache/models/NAME/VERSION`)
    and check it against its manifest. A cached copy that fails is downloaded again once; a fresh
    download that fails is deleted and refused."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    uri = resolve_uri(tracking_uri)
    client = store_client(uri)
    with mlflow_errors(uri, "the model registry"):
        mv = resolve(client, ref)
        target = Path(dest) if dest else paths.home() / "cache" / "models" / mv.name / str(mv.version)
        digest = mv.tags.get(MANIFEST_TAG)
        if _usable_cache(target, digest, dest is not None):
            return target
        source = client.get_model_version_download_uri(mv.name, mv.version)
        _download(source, target, uri, digest)
    return target


def _check(folder: Path, digest: str | None) -> None:
    verify_manifest(folder)
    if digest and sha256_file(folder / MANIFEST) != digest:
        raise RegistryError(f"{folder / MANIFEST} differs from the manifest registered with this version.",
                            hint="The stored model was rewritten after registration; do not use it.")


def _usable_cache(target: Path, digest: str | None, user_dest: bool) -> bool:
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return False
    if user_dest and not (target / MANIFEST).is_file():
        # Never delete a folder we did not fill.
        raise RegistryError(f"{target} exists and is not a fetched model folder.",
                            hint="Pass an empty or new folder as the destination.")
    try:
        _check(target, digest)
        return True
    except RegistryError as exc:
        if user_dest:  # the user's folder, not our cache: report, never delete
            raise RegistryError(f"{target} holds a model folder that fails its check: {exc.message}",
                                hint="Pass an empty or new folder as the destination.") from None
        _log.warning("cached model %s failed its check (%s); downloading it again", target, exc.message)
        shutil.rmtree(target)
        return False


def _download(source: str, target: Path, uri: str, digest: str | None) -> None:
    from mlflow.artifacts import download_artifacts

    target.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the target and rename: a half-finished copy is never mistaken for a model.
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
        folder = Path(download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=uri))
        try:
            _check(folder, digest)
        except RegistryError as exc:
            raise RegistryError(f"the stored model at {source} fails its integrity check: {exc.message}",
                                hint="It was changed or corrupted in the artifact store; register a "
                                     "fresh version (llmos models ls shows the others).") from exc
        if target.exists() and not any(target.iterdir()):
            target.rmdir()
        try:
            folder.rename(target)
        except OSError:
            # Another process fetched the same version first; keep its copy if it checks out.
            _check(target, digest)
