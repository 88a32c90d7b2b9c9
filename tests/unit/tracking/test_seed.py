"""A new SQLite tracking store is a copy of a cached empty one, and works as MLflow's own would."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from llmos.tracking._seed import seed_sqlite_store
from llmos.tracking._store import client


def _experiments(db: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT experiment_id, name, artifact_location FROM experiments").fetchall()


def _schema(db: Path) -> list[tuple[str, str, list[str]]]:
    """Tables and indexes; the lines of each statement sorted (MLflow orders constraints differently
    from one run to the next)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    return [(kind, name, sorted((sql or "").splitlines())) for kind, name, sql in rows]


def test_a_new_store_is_seeded_private_and_works_like_one_mlflow_made(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    cache = tmp_path / "cache"
    monkeypatch.setenv("LLMOS_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    made, seeded = tmp_path / "made" / "mlflow.db", tmp_path / "seeded" / "mlflow.db"
    made.parent.mkdir()
    seeded.parent.mkdir()
    mlflow.MlflowClient(f"sqlite:///{made}").search_experiments()  # MLflow's own migrations

    store = client(f"sqlite:///{seeded}")
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    assert template.is_file() and _experiments(template) == []  # kept without the Default experiment
    assert stat.S_IMODE(seeded.stat().st_mode) == 0o600
    assert [p.name for p in seeded.parent.iterdir()] == ["mlflow.db"]  # no temporary file left
    assert _schema(made) == _schema(seeded)
    with sqlite3.connect(made) as a, sqlite3.connect(seeded) as b:
        assert a.execute("SELECT * FROM alembic_version").fetchall() == \
            b.execute("SELECT * FROM alembic_version").fetchall()
    # MLflow made the Default experiment on opening the copy: its artifacts are this store's, as above
    assert [row[:2] for row in _experiments(seeded)] == [(0, "Default")]
    assert _experiments(seeded)[0][2] == _experiments(made)[0][2] == str(tmp_path / "mlruns" / "0")

    experiment = store.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    run = store.create_run(experiment)
    store.log_metric(run.info.run_id, "loss", 0.5)
    store.create_registered_model("m")
    version = store.create_model_version("m", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    store.set_registered_model_alias("m", "production", version.version)
    again = client(f"sqlite:///{seeded}")  # an existing store is opened, not seeded again
    assert again.get_metric_history(run.info.run_id, "loss")[0].value == 0.5
    assert str(again.get_model_version_by_alias("m", "production").version) == "1"


def test_an_existing_store_or_another_uri_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_CACHE_DIR", str(tmp_path / "cache"))
    kept = tmp_path / "kept.db"
    with sqlite3.connect(kept) as conn:
        conn.execute("CREATE TABLE mine (x)")
    seed_sqlite_store(f"sqlite:///{kept}")
    with sqlite3.connect(kept) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["mine"]
    dangling = tmp_path / "link.db"
    dangling.symlink_to(tmp_path / "elsewhere" / "mlflow.db")
    seed_sqlite_store(f"sqlite:///{dangling}")  # a link to a store yet to be made stays a link
    assert dangling.is_symlink()
    for uri in (f"sqlite:///{tmp_path / 'q.db'}?timeout=5", "sqlite:///relative.db", "sqlite://",
                f"sqlite:///{tmp_path / 'no-folder' / 'x.db'}", f"postgresql://h/{tmp_path / 'p.db'}"):
        seed_sqlite_store(uri)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.db", "link.db"]  # nothing made, no cache


def test_without_a_usable_cache_mlflow_makes_the_store_as_before(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("LLMOS_CACHE_DIR", str(blocked / "llmos"))
    db = tmp_path / "home" / "mlflow.db"
    db.parent.mkdir()
    seed_sqlite_store(f"sqlite:///{db}")
    assert not db.exists()  # not seeded, nothing half-made
    store = client(f"sqlite:///{db}")
    assert [e.name for e in store.search_experiments()] == ["Default"]
