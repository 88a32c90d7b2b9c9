"""Models: presets, builders per task, and safetensors save/load of trained folders."""

from llmos.models._build import MODEL_INFO, Built, build, load_trained, save_trained
from llmos.models._generate import greedy_answers
from llmos.models._onnx_export import export_onnx, onnx_graph
from llmos.models._presets import PRESETS, SMOLLM2_INSTALL, Preset, minilm_path, resolve, smollm2_gguf, smollm2_path

__all__ = ["MODEL_INFO", "PRESETS", "SMOLLM2_INSTALL", "Built", "Preset", "build", "export_onnx", "greedy_answers",
           "load_trained", "minilm_path", "onnx_graph", "resolve", "save_trained", "smollm2_gguf", "smollm2_path"]
