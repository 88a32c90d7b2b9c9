"""`llmos export MODEL_REF --format hf|onnx [--out DIR]`: a registered version for tools without llmos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import JsonFlag, console, print_json


def register(app: typer.Typer) -> None:
    app.command()(export)


def export(
    model: Annotated[str, typer.Argument(help="registry reference: NAME@ALIAS, NAME/VERSION or NAME")],
    format: Annotated[str, typer.Option(help="hf: a plain Hugging Face folder; onnx: an ONNX graph and its "
                                             "tokenizer")] = "hf",
    out: Annotated[Path | None, typer.Option(help="folder to write (new or empty)",
                                             show_default="./NAME-VERSION-FORMAT")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write a registered version in a form other tools load without llmos (transformers'
    from_pretrained, or ONNX Runtime); the files are verified against the registry first."""
    from llmos.api import export as run_export

    done = run_export(model, format=format, out=out)  # type: ignore[arg-type]
    if json_out:
        print_json(done)
        return
    console.print(f"exported {done.ref} ({done.task}, stored as {done.stored_as}) to {done.out}: "
                  f"{', '.join(done.files)}")
    load = (f"AutoTokenizer.from_pretrained('{done.out}'); AutoModel....from_pretrained('{done.out}')"
            if done.format == "hf" else f"onnxruntime.InferenceSession('{done.out}/model.onnx')")
    console.print(f"next: load it without llmos: {load}")
