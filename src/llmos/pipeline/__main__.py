"""`python -m llmos.pipeline STEP.json`: an evaluate or promote stage as a job of its own.

STEP.json is {"action": "evaluate" | "promote", "body": {...}, "folder": "..."}; the result goes to
FOLDER/result.json. Exit 0 when the step ran (its verdict may still fail the stage), 1 when it could not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmos._exit import skip_collection_at_exit


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    from llmos.errors import LlmosError
    from llmos.pipeline._steps import run_step

    step = json.loads(Path(argv[0]).read_text())
    try:
        result = run_step(step["action"], step["body"], Path(step["folder"]))
    except LlmosError as exc:
        print(f"error: {exc.message}" + (f"\n{exc.hint}" if exc.hint else ""), flush=True)
        return 1
    print(result["reason"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
