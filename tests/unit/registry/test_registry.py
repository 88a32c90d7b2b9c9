"""Registry against a real MLflow SQLite store: versions, lineage, aliases, rollback, fetch."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from llmos.errors import RegistryError
from llmos.registry import fetch, list_models, register_model, rollback, set_alias, show
from llmos.spec import TrackingSpec
from llmos.tracking import start_run

LINEAGE = {"data_hash": "d" * 64, "base_model": "minilm-l6", "recipe": "finetune"}


@pytest.fixture
def new_version(tmp_path: Path, make_model_dir: Callable[..., Path]) -> Callable[..., str]:
    """Train-and-register in miniature: a run with a metric and a logged model folder."""
    count = iter(range(1000))

    def make(name: str, alias: str | None = None, accuracy: float = 0.5) -> str:
        i = next(count)
        folder = make_model_dir(tmp_path / f"model{i}", weights=bytes([i]) * 64)
        with start_run(TrackingSpec(system_metrics=False), run_name=f"{name}-{i}", job={"i": i},
                       tags={}) as tracker:
            tracker.log_metrics({"eval/accuracy": accuracy}, step=1)
            uri = tracker.log_model_dir(folder)
        return register_model(name=name, run_id=tracker.run_id, artifact_uri=uri, alias=alias,
                              tags=LINEAGE, description=f"version from run {i}")
    return make


def test_register_records_lineage_and_points_the_alias(new_version) -> None:
    assert new_version("lineage", alias="candidate", accuracy=0.8) == "1"
    assert new_version("lineage") == "2"
    details = show("lineage@candidate")
    assert details.aliases == {"candidate": "1"}
    (v,) = details.versions
    assert v.version == "1" and v.aliases == ["candidate"]
    assert {k: v.tags[k] for k in LINEAGE} == LINEAGE
    assert v.tags["run_id"] == v.run_id
    assert len(v.tags["llmos.manifest_sha256"]) == 64
    assert v.source.endswith("/artifacts/model")
    assert v.metrics == {"eval/accuracy": 0.8}
    assert v.description == "version from run 0"
    assert [x.version for x in show("lineage").versions] == ["1", "2"]
    assert show("lineage/2").versions[0].aliases == []
    assert show("lineage").versions[-1].version == "2"  # a bare name lists all, latest last


def test_alias_history_and_rollback(new_version) -> None:
    for _ in range(3):
        new_version("roll")
    assert set_alias("roll", "1", "production") is None
    assert set_alias("roll", "2", "production") == "1"
    assert set_alias("roll", "3", "production") == "2"
    assert show("roll").alias_history == {"production": ["1", "2", "3"]}
    assert rollback("roll", "production") == ("3", "2")
    assert show("roll@production").versions[0].version == "2"
    assert rollback("roll", "production") == ("2", "1")
    with pytest.raises(RegistryError, match="no earlier version") as err:
        rollback("roll", "production")
    assert "llmos models alias roll VERSION production" in (err.value.hint or "")
    assert show("roll@production").versions[0].version == "1"


def test_register_with_alias_keeps_history(new_version) -> None:
    new_version("promote", alias="candidate")
    new_version("promote", alias="candidate")
    assert rollback("promote", "candidate") == ("2", "1")


def test_unknown_things_list_what_exists(new_version) -> None:
    new_version("known", alias="candidate")
    with pytest.raises(RegistryError, match=r"no registered model 'unknown'\. Registered: .*known") as err:
        show("unknown")
    assert err.value.hint == "See them with: llmos models ls"
    with pytest.raises(RegistryError, match=r"no alias 'prod'\. Aliases: candidate -> 1"):
        show("known@prod")
    with pytest.raises(RegistryError, match=r"no version 7\. Versions: 1\."):
        fetch("known/7")
    with pytest.raises(RegistryError, match="no version 9"):
        set_alias("known", "9", "candidate")
    with pytest.raises(RegistryError, match="has no alias 'prod' to roll back"):
        rollback("known", "prod")
    with pytest.raises(RegistryError, match="no registered model"):
        rollback("unknown", "prod")


def test_list_models(new_version) -> None:
    new_version("listed", alias="candidate")
    new_version("listed")
    summary = {m.name: m for m in list_models()}["listed"]
    assert summary.latest_version == "2"
    assert summary.version_count == 2
    assert summary.aliases == {"candidate": "1"}


def test_register_refuses_a_folder_without_manifest(new_version, tmp_path: Path) -> None:
    with start_run(TrackingSpec(system_metrics=False), run_name="raw", job={}, tags={}) as tracker:
        raw = tmp_path / "raw"
        raw.mkdir()
        (raw / "config.json").write_text("{}")
        tracker.log_artifact(raw, "model")  # logged without log_model_dir: no manifest
    with pytest.raises(RegistryError, match=r"no readable manifest\.json"):
        register_model(name="raw", run_id=tracker.run_id, artifact_uri=f"{tracker.artifact_uri}/model",
                       alias=None, tags={})


def _stored_copy(ref: str) -> Path:
    return Path(show(ref).versions[0].source.removeprefix("file://"))


def test_fetch_downloads_verifies_and_caches(new_version, llmos_home: Path) -> None:
    new_version("fetched", alias="candidate")
    path = fetch("fetched@candidate")
    assert path == llmos_home / "cache" / "models" / "fetched" / "1"
    assert (path / "model.safetensors").read_bytes() == (_stored_copy("fetched/1") / "model.safetensors").read_bytes()
    marker = path / "config.json"
    marker_inode = marker.stat().st_ino
    assert fetch("fetched/1") == path
    assert marker.stat().st_ino == marker_inode  # served from the cache, not downloaded again


def test_fetch_replaces_a_tampered_cache(new_version) -> None:
    new_version("recached")
    path = fetch("recached")
    (path / "model.safetensors").write_bytes(b"evil")
    (path / "stray.pkl").write_bytes(b"\x80\x04N.")
    assert fetch("recached") == path
    assert (path / "model.safetensors").read_bytes() == (_stored_copy("recached/1") / "model.safetensors").read_bytes()
    assert not (path / "stray.pkl").exists()


def test_fetch_refuses_a_tampered_store(new_version, llmos_home: Path) -> None:
    new_version("tampered")
    (_stored_copy("tampered/1") / "model.safetensors").write_bytes(b"evil weights")
    with pytest.raises(RegistryError, match=r"fails its integrity check: .*model\.safetensors"):
        fetch("tampered")
    cache = llmos_home / "cache" / "models" / "tampered"
    assert not any(cache.iterdir())  # nothing half-verified is left behind


def test_fetch_refuses_a_rewritten_manifest(new_version) -> None:
    # Weights and manifest rewritten together: only the digest kept in the registry catches it.
    new_version("rewritten")
    stored = _stored_copy("rewritten/1")
    (stored / "model.safetensors").write_bytes(b"evil weights")
    manifest = json.loads((stored / "manifest.json").read_text())
    from llmos.tracking import write_manifest

    write_manifest(stored)
    assert json.loads((stored / "manifest.json").read_text()) != manifest
    with pytest.raises(RegistryError, match="differs from the manifest registered"):
        fetch("rewritten")


def test_fetch_refuses_a_pickle_in_the_store(new_version) -> None:
    new_version("pickled")
    (_stored_copy("pickled/1") / "pytorch_model.bin").write_bytes(b"\x80\x04N.")
    with pytest.raises(RegistryError, match="never loads pickles"):
        fetch("pickled")


def test_fetch_to_a_chosen_folder(new_version, tmp_path: Path) -> None:
    new_version("placed")
    dest = tmp_path / "out" / "placed"
    assert fetch("placed", dest) == dest
    assert (dest / "manifest.json").is_file()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "precious.txt").write_text("keep me")
    with pytest.raises(RegistryError, match="not a fetched model folder"):
        fetch("placed", occupied)
    assert (occupied / "precious.txt").read_text() == "keep me"
    shutil.rmtree(dest)
