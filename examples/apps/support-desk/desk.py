"""support-desk: answer customer messages with a template, an FAQ entry, or hand them to a person.

    python desk.py                # MiniLM-L6, the full data (minutes on a laptop CPU)
    python desk.py --tiny         # the 2-layer test model (seconds; the figures mean nothing)

It writes its data, fine-tunes and registers both models with one llmos pipeline (`llmos run`),
serves the @production versions from the registry (`llmos.serve`), chooses the confidence
thresholds on the calibration set for the target precision, and reports on the test set: a table,
results.json and coverage_precision.png in --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import data
import measure
import report
import yaml

HERE = Path(__file__).resolve().parent
# --tiny: the test preset and enough steps to learn something; a second name keeps real models apart.
TINY = {"model": {"name": "tiny-bert"}, "train": {"lr": 5.0e-3, "num_threads": 1},
        "tracking": {"system_metrics": False}}
TINY_EPOCHS = {"intents": 10, "faq": 15}


def pipeline_spec(tiny: bool) -> dict:
    """The shipped pipeline.yaml, patched for --tiny."""
    spec = yaml.safe_load((HERE / "pipeline.yaml").read_text(encoding="utf-8"))
    if not tiny:
        return spec
    spec["name"] = "support-desk-tiny"
    for stage in spec["stages"]:
        if "train" in stage:
            body = stage["train"]
            for key, patch in TINY.items():
                body[key] = {**body.get(key, {}), **patch}
            body["train"]["epochs"] = TINY_EPOCHS[stage["name"]]
            body["register"]["name"] = body["register"]["name"].replace("support-desk-", "support-desk-tiny-")
        if "evaluate" in stage:
            stage["evaluate"]["min"] = {}  # a random-init model has no bar to clear
    return spec


def train(out: Path, spec: dict) -> dict[str, str]:
    """Run the pipeline in the foreground with the llmos CLI; the registry names of the two models."""
    path = out / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    llmos = shutil.which("llmos", path=str(Path(sys.executable).parent)) or shutil.which("llmos") or "llmos"
    done = subprocess.run([llmos, "run", str(path), "--json"], stdout=subprocess.PIPE, text=True)
    result = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    (out / "pipeline-result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if done.returncode != 0 or result.get("state") != "succeeded":
        failed = [f"{s['name']}: {s['reason']}" for s in result.get("stages", []) if s["state"] == "FAILED"]
        sys.exit(f"error: the pipeline failed: {'; '.join(failed) or 'see the output above'}\n"
                 f"hint: fix the stage named, then run this again; {out / 'pipeline-result.json'} has every stage")
    return registered(spec)


def registered(spec: dict) -> dict[str, str]:
    """The @production references the pipeline's promote stages set."""
    names = {s["name"]: s["train"]["register"]["name"] for s in spec["stages"] if "train" in s}
    return {"intents": f"{names['intents']}@production", "faq": f"{names['faq']}@production"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the 2-layer test model (seconds)")
    parser.add_argument("--out", type=Path, default=Path("support-desk-out"), help="folder for data and results")
    parser.add_argument("--target-precision", type=float, default=0.95,
                        help="share of automatic answers that must be right on the calibration set")
    parser.add_argument("--no-train", action="store_true",
                        help="measure the @production models of an earlier run instead of training")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    splits = data.write_all(out / "data")
    spec = pipeline_spec(args.tiny)
    refs = registered(spec) if args.no_train else train(out, spec)
    results = measure.run(refs, splits, data.load_faq(), target_precision=args.target_precision)
    results["model"] = "tiny-bert" if args.tiny else "minilm-l6"
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    report.plot(results, out / "coverage_precision.png")
    print(report.samples(results, json.loads((HERE / "templates.json").read_text(encoding="utf-8")),
                         data.load_faq()))
    print()
    print(report.table(results))
    print(f"wrote {out / 'results.json'} and {out / 'coverage_precision.png'}")
    return 0


if __name__ == "__main__":
    from llmos.errors import LlmosError

    try:
        raise SystemExit(main())
    except LlmosError as exc:  # what the user can fix: said in two lines, as llmos itself says it
        raise SystemExit(f"error: {exc.message}\nhint: {exc.hint}") from None
