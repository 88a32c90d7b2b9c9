"""`python -m llmos.serve JOB.json`: one replica from a resolved serve job (as `python -m llmos.run`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmos._exit import skip_collection_at_exit
from llmos.errors import LlmosError


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    if len(argv) != 1:
        print("usage: python -m llmos.serve JOB.json", file=sys.stderr)
        return 2
    from llmos.errors import SpecError
    from llmos.spec import ServeJob, validate_dict

    try:
        path = Path(argv[0])
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SpecError(f"cannot read the job file {path}: {exc}",
                            hint="Write it with `llmos serve --spec job.yaml --print-job`.") from None
        job = validate_dict({"kind": "serve", **raw}, source=str(path))
        if not isinstance(job, ServeJob):
            raise SpecError(f"{path} is a '{job.kind}' job, not a serve job.",  # type: ignore[attr-defined]
                            hint="Start other kinds with python -m llmos.run.")
        from llmos.serve._run import run_job

        return run_job(job)
    except LlmosError as exc:
        from llmos.cli._render import report

        return report(exc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
