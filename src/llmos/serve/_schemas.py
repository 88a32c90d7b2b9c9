"""Request and response bodies. Requests are strict (an unknown field is a 400 naming it), so the
OpenAPI document states exactly what each route accepts. Shapes follow OpenAI's API where one
exists (embeddings, completions, chat completions, models).

OpenAI parameters that llmos cannot honour are declared with the only values that change nothing
(null, false, an empty list): any other value is a 400 naming the parameter (`UNSUPPORTED`), never
silently dropped. Values are not coerced ("3" is not a number, 0 is not false). A string holding
a lone UTF-16 surrogate (JSON's "\\ud800") is a 400 too: it is not text, and no tokenizer can
encode it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "UNSUPPORTED",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ClassifyRequest",
    "ClassifyResponse",
    "ClassifyResult",
    "CompletionRequest",
    "CompletionResponse",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorResponse",
    "ModelCard",
    "ModelList",
    "Usage",
]


MAX_STOPS = 4
MAX_COMPLETION_LOGPROBS = 5  # OpenAI's limits on logprobs (completions) and top_logprobs (chat)
MAX_TOP_LOGPROBS = 20


def _bad_text(value: Any, where: str) -> str | None:
    """The dotted place of the first string in `value` that is not valid Unicode (a lone surrogate)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "body"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _bad_text(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


class _Request(BaseModel):
    # Strict: a value is valid exactly when the JSON schema says so (no "3" for 3, no 0 for false).
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        where = _bad_text(data, "")
        if where is not None:
            raise PydanticCustomError("invalid_unicode", "{where} holds a lone UTF-16 surrogate (such as \\ud800), "
                                      "which is not text; send valid Unicode.", {"where": where})
        return data


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int | None = None


class ClassifyRequest(_Request):
    input: Annotated[str | list[str] | list[Annotated[list[str], Field(min_length=2, max_length=2)]], Field(
        description="a text, a list of texts, or a list of [text, pair] for models trained on pairs")]
    model: Annotated[str | None, Field(description="the served model's name (optional)")] = None


class ClassifyResult(BaseModel):
    index: int
    label: str
    score: float
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[ClassifyResult]
    usage: Usage


class EmbeddingRequest(_Request):
    input: Annotated[str | list[str], Field(description="a text or a list of texts")]
    model: Annotated[str, Field(description="the served model's name")]
    encoding_format: Annotated[Literal["float", "base64"], Field(
        description="float: lists of numbers; base64: little-endian float32 bytes")] = "float"
    dimensions: Annotated[int | None, Field(gt=0, description="must be the model's own width, or absent")] = None
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[Embedding]
    usage: Usage


class StreamOptions(_Request):
    include_usage: bool = False


# A Literal compares with ==, so 0 would pass for false and true for 1: these keep the types apart.
def _only_bool(value: Any) -> Any:
    if value is not None and not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "Input should be a valid boolean")
    return value


def _only_int(value: Any) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _nothing(what: str) -> Any:
    return Field(description=f"not supported by llmos: {what}; any other value is a 400")


class _Sampling(_Request):
    model: Annotated[str, Field(description="the served model's name")]
    max_tokens: Annotated[int | None, Field(ge=1, description="tokens to generate at most")] = None
    temperature: Annotated[float, Field(ge=0, le=2, description="0: greedy; higher: more random")] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1, description="nucleus sampling: smallest token set of this mass")] = 1.0
    stop: Annotated[str | Annotated[list[str], Field(max_length=MAX_STOPS)] | None, Field(
        description=f"up to {MAX_STOPS} strings that end the text (not included)")] = None
    stream: Annotated[bool, Field(description="send tokens as server-sent events as they are generated")] = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, description="choices per prompt, each sampled on its own; every choice counts "
                                              "towards limits.max_inputs")] = 1
    seed: Annotated[int | None, Field(description=(
        "sample reproducibly: the same seed and parameters give the same answer, whatever else runs beside it"))] = (
        None)
    presence_penalty: Annotated[float, Field(ge=-2, le=2, description=(
        "subtracted from the logit of every token already generated"))] = 0.0
    frequency_penalty: Annotated[float, Field(ge=-2, le=2, description=(
        "subtracted from the logit of every generated token, times the times it was generated"))] = 0.0
    user: Annotated[str | None, Field(description="the end user's id, written to the server's log")] = None
    logit_bias: Annotated[dict[str, float] | None, Field(max_length=0), _nothing("logit_bias: null or {}")] = None


class CompletionRequest(_Sampling):
    prompt: Annotated[str | Annotated[list[str], Field(min_length=1)], Field(
        description="a prompt or a list of prompts")]
    max_tokens: Annotated[int | None, Field(ge=1, description="tokens to generate at most (default 16)")] = 16
    logprobs: Annotated[int | None, Field(ge=0, le=MAX_COMPLETION_LOGPROBS, description=(
        "the log-probability of each generated token and of this many most likely ones"))] = None
    echo: Annotated[Literal[False] | None, BeforeValidator(_only_bool), _nothing("echo: false")] = None
    best_of: Annotated[Literal[1] | None, BeforeValidator(_only_int), _nothing("best_of: 1")] = None
    suffix: Annotated[None, _nothing("suffix: null")] = None


class ContentPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]
    name: str | None = None


class ResponseFormatText(_Request):
    type: Literal["text"]


class ChatRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int | None, Field(ge=1, description="alias of max_tokens")] = None
    logprobs: Annotated[bool, Field(description="return the log-probability of each generated token")] = False
    top_logprobs: Annotated[int | None, Field(ge=0, le=MAX_TOP_LOGPROBS, description=(
        "with logprobs: true, also this many most likely tokens at each position"))] = None
    response_format: Annotated[ResponseFormatText | None, _nothing("response_format: {type: text}")] = None
    tools: Annotated[list[Any] | None, Field(max_length=0), _nothing("tools: []")] = None
    tool_choice: Annotated[Literal["none"] | None, _nothing("tool_choice: none")] = None
    parallel_tool_calls: Annotated[bool | None, Field(description="accepted; there are no tools to call")] = None
    functions: Annotated[list[Any] | None, Field(max_length=0), _nothing("functions: []")] = None
    function_call: Annotated[Literal["none"] | None, _nothing("function_call: none")] = None
    modalities: Annotated[list[Literal["text"]] | None, _nothing("modalities: [text]")] = None
    audio: Annotated[None, _nothing("audio: null")] = None
    prediction: Annotated[None, _nothing("prediction: null")] = None
    reasoning_effort: Annotated[None, _nothing("reasoning_effort: null")] = None
    store: Annotated[Literal[False] | None, BeforeValidator(_only_bool), _nothing("store: false")] = None
    metadata: Annotated[None, _nothing("metadata: null")] = None


# Declared parameters that llmos cannot honour: a value other than the neutral one is a 400.
UNSUPPORTED = frozenset({"logit_bias", "echo", "best_of", "suffix", "response_format", "tools", "tool_choice",
                         "functions", "function_call", "modalities", "audio", "prediction", "reasoning_effort",
                         "store", "metadata"})


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmos"
    task: str
    version: str
    runtime: str
    precision: str
    packing: str = Field("off", description="on, or off with the reason (encoder batches packed without padding)")
    compiled: str = Field("off", description="on, or off with the reason (torch.compile of the layer stack)")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
