"""Two daemons on one machine (or two test workers) that make the same project's OS user at the same
time both get it: useradd's 'name taken' and 'passwd file busy' are not failures of the second one."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from llmos.executor._jobuser import ensure_user
from llmos.executor._sandbox import project_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                                reason="making OS users needs root and useradd")


def test_concurrent_first_jobs_of_a_project_make_its_user_once() -> None:
    project = f"race{uuid.uuid4().hex[:6]}"
    start = threading.Barrier(4)
    results: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []

    def make() -> None:
        start.wait()
        try:
            results.append(ensure_user(project))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert len(results) == 4 and len(set(results)) == 1
        entries = [line for line in Path("/etc/passwd").read_text().splitlines()
                   if line.startswith(f"{project_user(project)}:")]
        assert len(entries) == 1, entries
    finally:
        subprocess.run(["userdel", project_user(project)], capture_output=True, check=False)
        subprocess.run(["groupdel", project_user(project)], capture_output=True, check=False)
