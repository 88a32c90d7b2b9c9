"""manifest.json: written over a model folder, and every kind of tampering refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos import __version__
from llmos.errors import RegistryError
from llmos.tracking import verify_manifest, write_manifest


def test_write_lists_every_file_with_hash_and_size(tmp_path: Path, make_model_dir) -> None:
    model = make_model_dir(tmp_path / "m")
    manifest = write_manifest(model)
    assert set(manifest["files"]) == {"config.json", "model.safetensors", "tokenizer/vocab.txt"}
    assert manifest["files"]["model.safetensors"]["bytes"] == 256
    assert len(manifest["files"]["config.json"]["sha256"]) == 64
    assert manifest["llmos_version"] == __version__
    assert json.loads((model / "manifest.json").read_text()) == manifest
    verify_manifest(model)
    # Writing again does not list the manifest itself.
    assert "manifest.json" not in write_manifest(model)["files"]


def test_changed_file_is_named(tmp_path: Path, make_model_dir) -> None:
    model = make_model_dir(tmp_path / "m")
    write_manifest(model)
    (model / "model.safetensors").write_bytes(b"\x01" * 256)  # same size, other bytes
    with pytest.raises(RegistryError, match=r"model\.safetensors does not match its sha256"):
        verify_manifest(model)


def test_missing_file_is_named(tmp_path: Path, make_model_dir) -> None:
    model = make_model_dir(tmp_path / "m")
    write_manifest(model)
    (model / "tokenizer" / "vocab.txt").unlink()
    with pytest.raises(RegistryError, match=r"vocab\.txt is missing"):
        verify_manifest(model)


@pytest.mark.parametrize("extra", ["pytorch_model.bin", "evil.pkl", "sub/optimizer.pt"])
def test_pickle_files_are_refused_outright(tmp_path: Path, make_model_dir, extra: str) -> None:
    model = make_model_dir(tmp_path / "m")
    write_manifest(model)
    (model / extra).parent.mkdir(exist_ok=True)
    (model / extra).write_bytes(b"\x80\x04N.")  # a pickle of None
    with pytest.raises(RegistryError, match="never loads pickles") as err:
        verify_manifest(model)
    assert Path(extra).name in err.value.message


def test_pickle_files_are_refused_at_write(tmp_path: Path, make_model_dir) -> None:
    model = make_model_dir(tmp_path / "m")
    (model / "training_args.bin").write_bytes(b"\x80\x04N.")
    with pytest.raises(RegistryError, match=r"training_args\.bin") as err:
        write_manifest(model)
    assert "safetensors" in (err.value.hint or "")
    assert not (model / "manifest.json").exists()


@pytest.mark.parametrize("extra", ["adapter.safetensors", "modeling_evil.py"])
def test_unlisted_weight_or_code_is_refused(tmp_path: Path, make_model_dir, extra: str) -> None:
    model = make_model_dir(tmp_path / "m")
    write_manifest(model)
    (model / extra).write_bytes(b"x")
    with pytest.raises(RegistryError, match=f"{extra} is not in the manifest"):
        verify_manifest(model)


def test_unlisted_harmless_file_is_tolerated(tmp_path: Path, make_model_dir) -> None:
    model = make_model_dir(tmp_path / "m")
    write_manifest(model)
    (model / "NOTES.md").write_text("hello")
    verify_manifest(model)


def test_no_or_broken_manifest(tmp_path: Path, make_model_dir) -> None:
    model = make_model_dir(tmp_path / "m")
    with pytest.raises(RegistryError, match=r"no manifest\.json"):
        verify_manifest(model)
    (model / "manifest.json").write_text("{not json")
    with pytest.raises(RegistryError, match="not a valid manifest"):
        verify_manifest(model)


def test_manifest_paths_cannot_climb_out(tmp_path: Path, make_model_dir) -> None:
    model = make_model_dir(tmp_path / "m")
    manifest = write_manifest(model)
    manifest["files"]["../outside.txt"] = {"sha256": "0" * 64, "bytes": 1}
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="unsafe path"):
        verify_manifest(model)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        write_manifest(tmp_path / "nope")
