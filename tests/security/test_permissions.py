"""File permissions (issue 14.3): the home 0700 (0711 when jobs run as other users, who must reach
their own folders), control/ 0700 with every file in it 0600, control.yaml 0600; created that way
and fixed at start for a home an older llmos made with 0755/0644."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.integration.test_control_plane import plane  # noqa: F401  (plane: fixture)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _control_is_private(home: Path) -> None:
    control = home / "control"
    assert _mode(control) == 0o700
    files = [p for p in control.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"admin.token", "state.db", "daemon-config.json", "daemon.json", "daemon.log"}
    loose = {str(p.relative_to(home)): oct(_mode(p)) for p in files if _mode(p) & 0o077}
    assert not loose, loose


def test_a_new_home_is_private(plane, llmos_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from llmos.paths import home

    monkeypatch.setenv("LLMOS_HOME", str(llmos_home / "fresh"))
    assert _mode(home()) == 0o700
    monkeypatch.setenv("LLMOS_HOME", str(llmos_home))
    llmos_home.chmod(0o755)  # as pytest made it
    plane()
    assert _mode(llmos_home) == 0o700
    _control_is_private(llmos_home)


@pytest.mark.skipif(os.geteuid() != 0, reason="jobs run as other users only under a root daemon")
def test_an_old_home_is_fixed_at_start(plane, llmos_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import sqlite3

    monkeypatch.setenv("LLMOS_ISOLATION", "users")
    llmos_home.chmod(0o755)
    (llmos_home / "control").mkdir(mode=0o755)
    (llmos_home / "control").chmod(0o755)
    sqlite3.connect(llmos_home / "control" / "state.db").close()
    sqlite3.connect(llmos_home / "mlflow.db").execute("CREATE TABLE kept (x)")  # a tracking store from before
    (llmos_home / "control.yaml").write_text("policy: full\n")
    for path in (llmos_home / "control" / "state.db", llmos_home / "control.yaml", llmos_home / "mlflow.db"):
        path.chmod(0o644)
    plane()
    assert _mode(llmos_home) == 0o711  # crossable (not listable) by the job users, to their own folders
    _control_is_private(llmos_home)
    assert _mode(llmos_home / "control.yaml") == 0o600
    for name in ("runs", "projects"):
        assert _mode(llmos_home / name) == 0o711 and (llmos_home / name).stat().st_uid == 0
    # The tracking store moved where the job users' group may write its journal; the old name links to it.
    import grp

    tracking = llmos_home / "tracking"
    assert grp.getgrgid(tracking.stat().st_gid).gr_name == "llmos-jobs" and _mode(tracking) == 0o2770
    assert (llmos_home / "mlflow.db").is_symlink() and _mode(tracking / "mlflow.db") == 0o660
    assert sqlite3.connect(llmos_home / "mlflow.db").execute("SELECT count(*) FROM kept").fetchone() == (0,)
