"""Local generation on llama.cpp (llama-cpp-python): the bundled GGUF weights as they
ship, greedy decoding, and grammar-constrained answers (GBNF) for tasks with a closed
output space.

Why llama.cpp: the bundled SmolLM2 and Gemma-3 weights are GGUF already (no conversion,
quantized matmuls), it runs on the CPU of a laptop or CI box, and its grammar sampler
makes every answer parse. vLLM's CPU build needs a from-source build with a matching
torch and is a server, not a library call; it stays the GPU serving path
(``scale/vllm_backend.py``). Prompts are tokenized by the same Hugging Face tokenizer as
the in-process path and passed as token ids, so both paths read identical inputs.

llama-cpp-python compiles llama.cpp at install time (``pip install 'ecomlm[engine]'``,
minutes); without it ``engine_available()`` is False and callers use transformers.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def engine_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


# llama.cpp file types (llama.h ``LLAMA_FTYPE_*``) the engine can re-type bundled weights to
WEIGHT_TYPES = {"native": None, "f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}


def retyped_gguf(path: Path, weights: str) -> Path:
    """``path`` re-written with ``weights`` tensors by llama.cpp's own quantizer, once,
    into the cache (``native`` returns ``path``). The bundled Q4_1 SmolLM2 runs on a slow
    generic kernel; its de-quantized f32/bf16 copy takes the engine's tuned matmuls and
    holds exactly the values the transformers path computes with (f32)."""
    if weights not in WEIGHT_TYPES:
        choices = ", ".join(WEIGHT_TYPES)
        raise ValueError(f"engine weights must be one of {choices}, got {weights!r}")
    if WEIGHT_TYPES[weights] is None:
        return path
    import llama_cpp

    from ecomlm.io import atomic_path
    from ecomlm.models import cache_dir

    target = cache_dir() / "gguf" / f"{path.stem}.{weights}.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype, params.allow_requantize, params.nthread = WEIGHT_TYPES[weights], True, 1
        from llama_cpp._utils import suppress_stdout_stderr  # the quantizer logs every tensor

        with atomic_path(target) as tmp, suppress_stdout_stderr(disable=False):
            if llama_cpp.llama_model_quantize(str(path).encode(), str(tmp).encode(), params):
                raise RuntimeError(f"llama.cpp could not re-type {path} to {weights}")
    return target


def gguf_adapter(adapter: str | Path, base_gguf: Path) -> Path:
    """A PEFT adapter (run folder, model folder or adapter folder) as a GGUF LoRA in the
    cache, converted once per adapter content (``gguf_lora.lora_to_gguf``)."""
    import hashlib

    from ecomlm.methods.llm.adapter_paths import adapter_dir
    from ecomlm.methods.llm.gguf_lora import lora_to_gguf
    from ecomlm.models import cache_dir

    folder = adapter_dir(adapter)
    digest = hashlib.sha256((folder / "adapter_model.safetensors").read_bytes())
    digest.update(base_gguf.name.encode())
    target = cache_dir() / "gguf" / f"lora-{digest.hexdigest()[:12]}.gguf"
    return target if target.exists() else lora_to_gguf(folder, base_gguf, target)


# The engine's context is the model's trained context up to this many tokens: the KV
# cache is allocated for all of it (SmolLM2 at 8,192: ~190 MB), and 8,192 is what the
# transformers path allows SmolLM2 too. A smaller context silently drops in-context
# demonstrations (fit_demos trims to it): at 2,048, 15 % of the study's 4-shot ESCI
# prompts kept 2 or 3 (session 10).
MAX_CONTEXT = 8192


@functools.lru_cache(maxsize=8)  # the parse takes seconds; a server opens one file often
def trained_context(path: Path) -> int:
    """The context length a GGUF model was trained with (``<arch>.context_length``)."""
    from ecomlm.io import gguf_metadata

    field = gguf_metadata(path)
    value = field(f"{field('general.architecture')}.context_length")
    if value is None:
        raise ValueError(f"{path}: no context_length in the GGUF metadata")
    return int(value)


def gguf_path(model: str) -> Path:
    """A GGUF file for a bundled model name (``smollm2``, ``gemma3``) or a ``.gguf`` path."""
    from ecomlm.models import BUNDLED_LLMS, gguf_file

    if model in BUNDLED_LLMS:
        return gguf_file(model)
    path = Path(model)
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise ValueError(
        f"engine backend needs a GGUF model: a bundled name ({', '.join(BUNDLED_LLMS)}) or a "
        f".gguf file, got {model!r}"
    )


class LlamaCppEngine:
    """Greedy (optionally grammar-constrained) completion of token-id prompts."""

    name = "llama.cpp"

    def __init__(
        self,
        model: str = "smollm2",
        n_ctx: int | None = None,
        threads: int | None = None,
        weights: str = "f32",
        adapter: str | Path | None = None,
    ):
        if not engine_available():
            raise ImportError(
                "the llama.cpp engine needs llama-cpp-python: pip install 'ecomlm[engine]'"
            )
        from llama_cpp import Llama

        self.model_name, self.weights = model, weights
        self.path = retyped_gguf(gguf_path(model), weights)
        self.lora = gguf_adapter(adapter, self.path) if adapter else None
        threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count() or 1
        lora = {"lora_path": str(self.lora)} if self.lora else {}
        n_ctx = n_ctx or min(trained_context(self.path), MAX_CONTEXT)
        # n_threads_batch too: llama-cpp-python gives prompt processing every core otherwise,
        # so a single-threaded study worker took two (session 9)
        self.llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads,
                         n_threads_batch=threads, n_batch=512, flash_attn=True, seed=0,
                         verbose=False, **lora)  # fmt: skip
        self._grammars: dict[str, Any] = {}

    def close(self) -> None:
        """Free the model now (llama-cpp-python's own finaliser can fail at interpreter exit)."""
        if getattr(self, "llm", None) is not None:
            self.llm.close()
            self.llm = None

    @property
    def context_limit(self) -> int:
        return int(self.llm.n_ctx())

    def grammar(self, gbnf: str | None) -> Any:
        """A compiled GBNF grammar (cached: a task's grammar is often the same string)."""
        if gbnf is None:
            return None
        if gbnf not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[gbnf] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    def complete(
        self, prompt_ids: Sequence[int], max_new_tokens: int, gbnf: str | None = None
    ) -> tuple[str, int]:
        """(new text, completion tokens) for one prompt; stops at the model's end token."""
        self.llm.reset()  # no prefix reuse across unrelated prompts: outputs stay exact
        out = self.llm.create_completion(
            list(prompt_ids),
            max_tokens=max_new_tokens,
            temperature=0.0,
            top_k=1,
            grammar=self.grammar(gbnf),
        )
        return out["choices"][0]["text"].strip(), int(out["usage"]["completion_tokens"])
