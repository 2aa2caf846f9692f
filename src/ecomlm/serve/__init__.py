"""Serving trained runs: batch file prediction and a REST server (see docs/serve.md).

Modules: ``registry`` (loaded runs; LoRA adapters share one base LLM),
``batching`` (micro-batcher, one model worker thread), ``app`` (FastAPI app:
task predictions, OpenAI-compatible chat, models, health), ``batch`` (streaming
JSONL/CSV prediction), ``schemas`` (pydantic input models from task
dataclasses), ``commands`` (``ecomlm predict`` / ``ecomlm serve``).
Heavy imports stay inside the modules, so ``import ecomlm.serve`` is cheap.
"""
