"""Request and response bodies. Requests are strict (unknown fields are 422 naming the field), so
the OpenAPI document states exactly what each route accepts. Shapes follow OpenAI's API where
one exists (embeddings, completions, chat completions, models)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ClassifyRequest",
    "ClassifyResponse",
    "ClassifyResult",
    "CompletionRequest",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ModelCard",
    "ModelList",
    "Usage",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class _Sampling(_Request):
    model: Annotated[str, Field(description="the served model's name")]
    max_tokens: Annotated[int | None, Field(ge=1, description="tokens to generate at most")] = None
    temperature: Annotated[float, Field(ge=0, le=2, description="0: greedy; higher: more random")] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1, description="nucleus sampling: smallest token set of this mass")] = 1.0
    stop: Annotated[str | list[str] | None, Field(description="up to 4 strings that end the text (not included)")] = (
        None)
    stream: Annotated[bool, Field(description="send tokens as server-sent events as they are generated")] = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, description="choices per prompt, each sampled on its own; every choice counts "
                                              "towards limits.max_inputs")] = 1
    user: str | None = None


class CompletionRequest(_Sampling):
    prompt: Annotated[str | list[str], Field(description="a prompt or a list of prompts")]
    max_tokens: Annotated[int | None, Field(ge=1, description="tokens to generate at most (default 16)")] = 16


class ContentPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]
    name: str | None = None


class ChatRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int | None, Field(ge=1, description="alias of max_tokens")] = None


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
