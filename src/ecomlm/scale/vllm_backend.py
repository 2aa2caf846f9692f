"""Batch prediction with one base LLM and many LoRA adapters through vLLM multi-LoRA.

vLLM keeps the base weights once on the GPU and applies up to ``max_loras``
adapters per batch (Punica kernels), so requests for different tasks' adapters
share one engine and one continuous batch. This module builds the **same
prompts as training and the transformers path** (``lora_data.prompt_ids``: the
task's chat prompt as token ids, truncated the same way) and parses answers with
the task's own parser, so predictions are comparable with ``LoraMethod.predict``:

* generation tasks (and ESCI with ``esci_inference="generate"``): greedy decoding
  up to the task's ``max_new_tokens``, stopping at end-of-turn;
* label tasks (ESCI, ``esci_inference="score"``): every label's tokens + end of
  turn are scored as a continuation of the prompt (``prompt_logprobs``), length
  normalised and soft-maxed over the labels, like ``llm.score_labels``.
  Prefix caching makes the repeated prompt almost free.

Used when ``vllm_available()``: vLLM importable and a CUDA GPU present.
Otherwise callers use the transformers path (``LoraMethod.load(run/model)``,
or ``ecomlm serve`` which holds several adapters on one base with PEFT).
``predictor_for_runs`` makes that choice.

    from ecomlm.scale.vllm_backend import VllmMultiLora
    engine = VllmMultiLora.from_runs({"esci": "runs/s/esci-lora", "ner": "runs/s/ner-lora"})
    preds = engine.predict("esci", esci_examples)            # one adapter
    preds = engine.predict_mixed([("ner", ex1), ("esci", ex2)])  # adapters mixed in one batch
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# vLLM's accepted ``max_lora_rank`` values (vllm.config.lora.MaxLoRARanks)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def vllm_available() -> bool:
    """True when ``vllm`` imports and a CUDA GPU is visible."""
    try:
        import vllm  # noqa: F401
    except Exception:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def vllm_lora_rank(ranks: Sequence[int]) -> int:
    """The smallest rank vLLM accepts that holds every adapter's rank."""
    need = max(ranks, default=8)
    for rank in VLLM_LORA_RANKS:
        if rank >= need:
            return rank
    raise ValueError(f"LoRA rank {need} exceeds vLLM's maximum {VLLM_LORA_RANKS[-1]}")


@dataclass
class AdapterRun:
    """One LoRA run to serve: its name, adapter folder, task and the run's inference settings."""

    name: str
    adapter: str  # PEFT folder (adapter_config.json + adapter_model.safetensors)
    task: Any
    base_model: str
    rank: int
    esci_inference: str = "score"
    max_new_tokens: int | None = None
    max_length: int = 512
    label_score: str = "sum"  # as LoraMethod.Config.label_score


def read_adapter_run(name: str, run_dir: str | Path) -> AdapterRun:
    """An ``AdapterRun`` from a LoRA run folder (or saved model folder) written by ecomlm."""
    from ecomlm.io import read_json
    from ecomlm.methods.base import METHOD_FILE, read_method_header
    from ecomlm.methods.llm.adapter_paths import ADAPTER_CONFIG, locate_adapter
    from ecomlm.tasks import get_task

    folder, method_dir = locate_adapter(run_dir)
    header_path = method_dir / METHOD_FILE
    not_found = (
        f"{run_dir} is not a LoRA run written by ecomlm "
        "(expected <run>/model/method.json next to <run>/model/adapter/)"
    )
    header = read_method_header(header_path, not_found, keys=("task",))
    config = header.get("config") or {}
    adapter_config = read_json(folder / ADAPTER_CONFIG)
    base = config.get("base_model") or adapter_config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{header_path}: no base_model in config or adapter_config.json")
    return AdapterRun(
        name=name,
        adapter=str(folder),
        task=get_task(header["task"], **header.get("task_options", {})),
        base_model=str(base),
        rank=int(adapter_config.get("r", 8)),
        esci_inference=config.get("esci_inference", "score"),
        max_new_tokens=config.get("max_new_tokens"),
        max_length=int(config.get("max_length", 512)),
        label_score=config.get("label_score", "sum"),
    )


def label_scores(
    logprobs: Sequence[float], lengths: Sequence[int], labels: Sequence[str], normalize: bool = True
) -> dict[str, float]:
    """Softmax over labels of their log-likelihoods, length-normalised when ``normalize``
    (as ``score_labels``)."""
    totals = [lp / n if normalize else lp for lp, n in zip(logprobs, lengths, strict=True)]
    top = max(totals)
    exps = [math.exp(t - top) for t in totals]
    z = sum(exps)
    return {label: e / z for label, e in zip(labels, exps, strict=True)}


class VllmMultiLora:
    """A vLLM engine over one base model with several LoRA adapters, addressed by name."""

    def __init__(
        self,
        runs: Sequence[AdapterRun],
        *,
        max_loras: int | None = None,
        max_lora_rank: int | None = None,
        dtype: str = "bfloat16",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.85,
        **engine_kwargs: Any,
    ) -> None:
        if not runs:
            raise ValueError("VllmMultiLora needs at least one adapter run")
        bases = {r.base_model for r in runs}
        if len(bases) != 1:
            raise ValueError(
                f"all adapters must share one base model to be served together, got {sorted(bases)}"
            )
        names = [r.name for r in runs]
        if len(set(names)) != len(names):
            raise ValueError(f"adapter names must be unique, got {names}")
        from transformers import AutoTokenizer
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        from ecomlm.models import llm_path

        self.runs = {r.name: r for r in runs}
        self.base_path = llm_path(runs[0].base_model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.base_path)
        self.llm = LLM(
            model=self.base_path,
            enable_lora=True,
            max_loras=max_loras or len(runs),
            max_lora_rank=max_lora_rank or vllm_lora_rank([r.rank for r in runs]),
            dtype=dtype,
            max_model_len=max_model_len or max(r.max_length for r in runs),
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=True,
            **engine_kwargs,
        )
        # vLLM ids must be unique positive ints
        self.requests = {r.name: LoRARequest(r.name, i + 1, r.adapter) for i, r in enumerate(runs)}

    @classmethod
    def from_runs(cls, run_dirs: Mapping[str, str | Path], **kwargs: Any) -> VllmMultiLora:
        """Serve the adapters of LoRA run folders, ``{name: run_dir}``."""
        return cls([read_adapter_run(n, d) for n, d in run_dirs.items()], **kwargs)

    # ------------------------------------------------------------------ helpers
    def _stop_ids(self) -> list[int]:
        from ecomlm.methods.llm.causal_lm import end_of_turn_id

        ids = [end_of_turn_id(self.tokenizer), self.tokenizer.eos_token_id]
        return list(dict.fromkeys(int(i) for i in ids if i is not None))

    def _new_tokens(self, run: AdapterRun) -> int:

        if run.max_new_tokens is not None:
            return int(run.max_new_tokens)
        return run.task.max_new_tokens

    def _scoring(self, run: AdapterRun) -> bool:
        return bool(run.task.labels) and run.esci_inference == "score"

    # ------------------------------------------------------------------ predict
    def predict(self, adapter: str, examples: Sequence[Any]) -> list[Any]:
        """Predictions of one adapter's task for ``examples``."""
        return self.predict_mixed([(adapter, ex) for ex in examples])

    def predict_mixed(self, requests: Sequence[tuple[str, Any]]) -> list[Any]:
        """``[(adapter name, example)]`` -> predictions, all adapters in the same engine run."""
        from vllm import SamplingParams

        from ecomlm.methods.llm import lora_data
        from ecomlm.methods.llm.causal_lm import end_of_turn_id

        for name, _ in requests:
            if name not in self.runs:
                raise KeyError(f"unknown adapter {name!r}; loaded: {sorted(self.runs)}")
        eot = end_of_turn_id(self.tokenizer)
        prompts: list[dict[str, list[int]]] = []
        params: list[Any] = []
        loras: list[Any] = []
        # per request: ("gen", index) or ("score", [indices], [answer lengths], labels)
        plan: list[tuple] = []
        for name, ex in requests:
            run = self.runs[name]
            scoring = self._scoring(run)
            new_tokens = 0 if scoring else self._new_tokens(run)
            budget = max(run.max_length - new_tokens, 16)
            ids = lora_data.prompt_ids(self.tokenizer, run.task, ex, budget)
            if scoring:
                labels = list(run.task.labels)
                index, lengths = [], []
                for label in labels:
                    answer = self.tokenizer(label, add_special_tokens=False).input_ids + [eot]
                    index.append(len(prompts))
                    lengths.append(len(answer))
                    prompts.append({"prompt_token_ids": ids + answer})
                    params.append(SamplingParams(max_tokens=1, prompt_logprobs=1))
                    loras.append(self.requests[name])
                plan.append(("score", index, lengths, labels))
            else:
                plan.append(("gen", len(prompts)))
                prompts.append({"prompt_token_ids": ids})
                params.append(
                    SamplingParams(
                        temperature=0.0, max_tokens=new_tokens, stop_token_ids=self._stop_ids()
                    )
                )
                loras.append(self.requests[name])
        outputs = self.llm.generate(prompts, params, lora_request=loras, use_tqdm=False)

        predictions = []
        for (name, ex), item in zip(requests, plan, strict=True):
            task = self.runs[name].task
            if item[0] == "gen":
                predictions.append(task.parse(outputs[item[1]].outputs[0].text, ex))
                continue
            _, index, lengths, labels = item
            logprobs = []
            for i, n in zip(index, lengths, strict=True):
                out = outputs[i]
                ids = prompts[i]["prompt_token_ids"]
                steps = out.prompt_logprobs[len(ids) - n :]
                pairs = zip(steps, ids[-n:], strict=True)
                logprobs.append(sum(step[t].logprob for step, t in pairs))
            scores = label_scores(logprobs, lengths, labels, self.runs[name].label_score == "mean")
            pred = task.parse(max(scores, key=scores.get), ex)
            pred.scores = scores
            predictions.append(pred)
        return predictions


def predictor_for_runs(run_dirs: Mapping[str, str | Path], prefer_vllm: bool = True) -> Any:
    """``predict(name, examples)`` over several LoRA runs: vLLM when available, else transformers.

    The transformers fallback loads each run with ``LoraMethod.load`` on first
    use (one base copy per adapter; ``ecomlm serve`` shares one base instead).
    """
    if prefer_vllm and vllm_available():
        return VllmMultiLora.from_runs(run_dirs)
    return TransformersLoraPredictor(run_dirs)


class TransformersLoraPredictor:
    """The fallback: ``LoraMethod.load(run/model).predict`` per adapter (CPU or one GPU)."""

    def __init__(self, run_dirs: Mapping[str, str | Path]) -> None:
        self.run_dirs = {name: Path(d) for name, d in run_dirs.items()}
        self.methods: dict[str, Any] = {}

    def predict(self, adapter: str, examples: Sequence[Any]) -> list[Any]:
        from ecomlm.methods.llm.lora import LoraMethod, adapter_dir

        if adapter not in self.run_dirs:
            raise KeyError(f"unknown adapter {adapter!r}; loaded: {sorted(self.run_dirs)}")
        if adapter not in self.methods:
            self.methods[adapter] = LoraMethod.load(adapter_dir(self.run_dirs[adapter]).parent)
        return self.methods[adapter].predict(list(examples))

    def predict_mixed(self, requests: Sequence[tuple[str, Any]]) -> list[Any]:
        out: list[Any] = [None] * len(requests)
        by_adapter: dict[str, list[int]] = {}
        for i, (name, _) in enumerate(requests):
            by_adapter.setdefault(name, []).append(i)
        for name, idx in by_adapter.items():
            for i, pred in zip(idx, self.predict(name, [requests[i][1] for i in idx]), strict=True):
                out[i] = pred
        return out
