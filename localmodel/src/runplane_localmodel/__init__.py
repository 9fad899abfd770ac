"""A real, small, OpenAI-compatible model that runs offline on 127.0.0.1.

llama.cpp's `llama-server` (built once per machine from a pinned source archive) serving
Qwen2.5-Coder-0.5B-Instruct (fetched once, verified by sha256) with a chat template that makes tool
calls come back as `tool_calls`. Good for proving the wire path, streaming, durability and replay
with a real model; not for judging answer quality. Its own distribution (runplane-localmodel),
so the core stays small; it adds `runplane model` through the `runplane_cli` hook."""

from __future__ import annotations

from .build import LLAMA_CPP_PYTHON_VERSION, binary_path, cached_binary, ensure_binary
from .cache import ENV_CACHE_DIR, cache_dir
from .errors import LocalModelError
from .server import DEFAULT_MODEL, Artifacts, LocalModelServer, prepare
from .template import template_path
from .weights import QWEN_CODER_05B, WeightsSpec, cached_weights, ensure_weights, weights_path

__all__ = [
    "DEFAULT_MODEL",
    "ENV_CACHE_DIR",
    "LLAMA_CPP_PYTHON_VERSION",
    "QWEN_CODER_05B",
    "Artifacts",
    "LocalModelError",
    "LocalModelServer",
    "WeightsSpec",
    "binary_path",
    "cache_dir",
    "cached_binary",
    "cached_weights",
    "ensure_binary",
    "ensure_weights",
    "prepare",
    "template_path",
    "weights_path",
]
