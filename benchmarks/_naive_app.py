"""The baseline of benchmarks/serve.py: a naive FastAPI app that calls the transformers pipeline
once per request (a sync route, so FastAPI runs each call in its thread pool; no batching).

    NAIVE_MODEL=/path/to/model/folder python -m uvicorn _naive_app:app --port 8001
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

classifier = pipeline("text-classification", model=os.environ["NAIVE_MODEL"], top_k=None)
app = FastAPI()


class Request(BaseModel):
    input: str | list[str]


@app.get("/readyz")
def readyz() -> dict:
    return {"status": "ready"}


@app.post("/v1/classify")
def classify(request: Request) -> dict:
    return {"data": classifier(request.input)}
