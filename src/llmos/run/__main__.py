"""`python -m llmos.run JOB.json`: validate the resolved job file and run its recipe."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmos.errors import LlmosError


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m llmos.run JOB.json", file=sys.stderr)
        return 2
    from llmos.errors import SpecError
    from llmos.spec import validate_dict

    try:
        path = Path(argv[0])
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SpecError(f"cannot read the job file {path}: {exc}",
                            hint="Start jobs with `llmos train SPEC`, which writes this file.") from None
        job = validate_dict(raw, source=str(path))
        from llmos.run.train import train

        return train(job)  # type: ignore[arg-type]
    except LlmosError as exc:
        from llmos.cli._render import debug

        if debug():
            raise
        print(f"error: {exc.message}" + (f"\nfix: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
