"""`load_chat`: chat JSONL (`messages`) or prompt/completion rows -> train and eval conversations.

Every row becomes a list of `{role, content}` messages ending with an assistant turn: a
prompt/completion pair is one user turn and one assistant turn. Bad rows are reported by file,
line and field, all at once (up to a few), never half-read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.data._hash import combine_digests, file_digest
from llmos.data._split import split_indices
from llmos.errors import DataError

if TYPE_CHECKING:
    from llmos.spec import DataSpec, SftSpec

__all__ = ["ChatDataset", "Message", "load_chat"]

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
_ROLES = ("system", "user", "assistant")
_SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class ChatDataset:
    train: list[list[Message]]
    eval: list[list[Message]]
    data_hash: str  # sha256 of the files' bytes, as for every other dataset
    sources: list[str]
    label_names: None = None  # as Dataset's, for the recipe: conversations have no labels


def load_chat(spec: DataSpec, sft: SftSpec) -> ChatDataset:
    """Read `data.train` (and `data.eval`, else hold out `data.eval_fraction`); `data.limit` keeps the
    first N training conversations before the held-out split, `sft.eval_examples` the first N eval ones."""
    train_path = _jsonl(spec.train, "data.train", spec.format)
    train = _read(train_path, "data.train", sft)
    if spec.limit is not None:
        train = train[: spec.limit]
    paths = [train_path]
    if spec.eval:
        paths.append(_jsonl(spec.eval, "data.eval", spec.format))
        held = _read(paths[1], "data.eval", sft)
    else:
        keep, out = split_indices(len(train), spec.eval_fraction, spec.split_seed)
        if len(out) == 0:
            raise DataError(f"{train_path}: holding out data.eval_fraction={spec.eval_fraction} of {len(train)} "
                            "conversations leaves none for eval.", hint="Give data.eval or add rows.")
        train, held = [train[i] for i in keep], [train[i] for i in out]
    if sft.eval_examples is not None:
        held = held[: sft.eval_examples]
    return ChatDataset(train=train, eval=held, data_hash=combine_digests([file_digest(p) for p in paths]),
                       sources=[str(p) for p in paths])


def _jsonl(ref: str, field: str, fmt: str) -> Path:
    path = Path(ref).expanduser()
    if fmt not in ("auto", "jsonl") or (fmt == "auto" and path.suffix.lower() not in (".jsonl", ".json")):
        raise DataError(f"{field}: instruction tuning (sft) reads JSONL, and '{ref}' is not a .jsonl file.",
                        hint="Write one JSON object per line with a messages list or prompt/completion, "
                             "or set data.format: jsonl.")
    if not path.is_file():
        raise DataError(f"{field}: no file at '{ref}'.", hint=f"Point {field} at a JSONL file.")
    return path.resolve()


def _read(path: Path, field: str, sft: SftSpec) -> list[list[Message]]:
    conversations, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            conversations.append(_conversation(json.loads(line), sft))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            problems.append(f"line {number}: {exc}")
    if problems:
        shown = "\n  ".join(problems[:_SHOWN_PROBLEMS])
        more = f"\n  … and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
        raise DataError(f"{field}: {path} has {len(problems)} malformed rows:\n  {shown}{more}",
                        hint=f"Each line is an object with sft.messages_field ('{sft.messages_field}': a list of "
                             f"{{role, content}}) or sft.prompt_field and sft.completion_field "
                             f"('{sft.prompt_field}', '{sft.completion_field}').")
    if not conversations:
        raise DataError(f"{field}: {path} has no rows.", hint=f"Point {field} at a file with conversations.")
    return conversations


def _conversation(row: Any, sft: SftSpec) -> list[Message]:
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object")
    if sft.messages_field in row:
        messages = row[sft.messages_field]
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"'{sft.messages_field}' must be a non-empty list of {{role, content}}")
        out = [_message(m, f"{sft.messages_field}[{i}]") for i, m in enumerate(messages)]
    elif sft.prompt_field in row and sft.completion_field in row:
        out = [_message({"role": "user", "content": row[sft.prompt_field]}, sft.prompt_field),
               _message({"role": "assistant", "content": row[sft.completion_field]}, sft.completion_field)]
    else:
        raise ValueError(f"neither '{sft.messages_field}' nor '{sft.prompt_field}' + '{sft.completion_field}' "
                         f"(keys: {', '.join(sorted(row)) or 'none'})")
    if out[-1]["role"] != "assistant":
        raise ValueError("the conversation must end with an assistant turn (the answer learned)")
    return out


def _message(value: Any, where: str) -> Message:
    if not isinstance(value, dict) or value.get("role") not in _ROLES or not isinstance(value.get("content"), str):
        raise ValueError(f"{where} must be {{role: {'|'.join(_ROLES)}, content: text}}")
    if not value["content"].strip():
        raise ValueError(f"{where} has an empty content")
    return {"role": value["role"], "content": value["content"]}
