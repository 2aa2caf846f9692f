"""The models a server (or a batch job) holds: run folders -> predict / chat.

LoRA and merged-adapter runs that share a base LLM share ONE copy of it: the
base is loaded once with ``ecomlm.methods.llm.causal_lm.load_llm`` and every adapter is
attached under its run name (PEFT ``load_adapter``); a request switches the
active adapter with ``set_adapter`` (or ``disable_adapter`` for the plain base).
Every other method (BERT, seq2seq, classical, ICL) is loaded with
``ecomlm.methods.load_method`` and predicts on its own.

Not thread-safe, like the models it holds: call it from one thread at a time
(the server's single worker thread does).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecomlm.io import read_json
from ecomlm.methods import method_info
from ecomlm.methods.base import METHOD_FILE, config_from_dict, read_method_header
from ecomlm.methods.llm.adapter_paths import ADAPTER_CONFIG, adapter_dir
from ecomlm.tasks import Prediction, Task, get_task
from ecomlm.tasks.base import Messages


class UnknownModelError(KeyError):
    """A model name that the registry does not hold (the server answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class ChatOutput:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn or a stop string) or "length"
    timed_out: bool = False  # generation was cut at the request deadline


@dataclass
class LlmBase:
    """One base LLM in memory and the adapters attached to it by name."""

    name: str
    model: Any
    tokenizer: Any
    adapters: dict[str, str] = field(default_factory=dict)  # adapter name -> folder

    def attach(self, adapter_name: str, adapter_dir: str | Path) -> None:
        from peft import PeftModel

        if not self.adapters:
            self.model = PeftModel.from_pretrained(
                self.model, str(adapter_dir), adapter_name=adapter_name
            )
        else:
            self.model.load_adapter(str(adapter_dir), adapter_name=adapter_name)
        self.model.eval()
        self.adapters[adapter_name] = str(adapter_dir)

    @contextlib.contextmanager
    def active(self, adapter_name: str | None) -> Iterator[Any]:
        """The model with ``adapter_name`` active, or the plain base for ``None``."""
        if adapter_name is None:
            if self.adapters:
                with self.model.disable_adapter():
                    yield self.model
            else:
                yield self.model
            return
        if adapter_name not in self.adapters:
            raise UnknownModelError(f"adapter {adapter_name!r} is not attached to {self.name!r}")
        self.model.set_adapter(adapter_name)
        yield self.model


@dataclass
class ServedModel:
    """One servable model: a run (adapter or saved method) or a plain base LLM."""

    name: str
    method: str  # method name from method.json, or "base" for a plain base LLM
    task: Task | None  # None for a plain base LLM (chat only)
    run_dir: str | None = None
    base: str | None = None  # the base LLM's name, for adapter runs and bases
    config: dict = field(default_factory=dict)
    loaded: Any = None  # the loaded Method (non-adapter runs) or a LoraMethod sharing the base

    @property
    def can_chat(self) -> bool:
        return self.base is not None

    def info(self) -> dict:
        return {
            "id": self.name,
            "method": self.method,
            "task": self.task.name if self.task is not None else None,
            "task_options": dict(getattr(self.task, "options", {}) or {}),
            "base_model": self.base,
            "run": self.run_dir,
        }


def parse_run_arg(arg: str) -> tuple[str | None, Path]:
    """``runs/X`` or ``NAME=runs/X`` -> (name or None, path)."""
    if "=" in arg and not Path(arg).exists():
        name, path = arg.split("=", 1)
        return name.strip() or None, Path(path)
    return None, Path(arg)


def read_header(run_dir: Path) -> dict:
    """``model/method.json`` of a run folder (or of a bare saved-method folder)."""
    model_dir = run_dir / "model" if (run_dir / "model").is_dir() else run_dir
    not_found = (
        f"{run_dir} is not an ecomlm run folder (expected config.yaml and model/method.json)"
    )
    header = read_method_header(model_dir / METHOD_FILE, not_found)
    header["_model_dir"] = str(model_dir)
    return header


def adapter_base(header: dict) -> str | None:
    """The base LLM of an adapter run, or None when the run is not a PEFT adapter."""
    if not method_info(header["method"]).adapter:  # e.g. lora, merge
        return None
    try:
        folder = adapter_dir(header["_model_dir"])
    except FileNotFoundError:
        return None
    base = (header.get("config") or {}).get("base_model")
    if not base:
        base = read_json(folder / ADAPTER_CONFIG)["base_model_name_or_path"]
    return str(base)


class ModelRegistry:
    def __init__(self, device: str = "cpu", dtype: str = "float32") -> None:
        self.device = device
        self.dtype = dtype
        self.models: dict[str, ServedModel] = {}
        self.bases: dict[str, LlmBase] = {}

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_args(
        cls,
        runs: Sequence[str] = (),
        bases: Sequence[str] = (),
        device: str = "cpu",
        dtype: str = "float32",
    ) -> ModelRegistry:
        registry = cls(device=device, dtype=dtype)
        for arg in runs:
            name, path = parse_run_arg(arg)
            registry.add_run(path, name=name)
        for base in bases:
            registry.add_base(base)
        if not registry.models:
            raise ValueError("nothing to serve: give at least one --run or --base")
        return registry

    def _check_name(self, name: str) -> None:
        if name in self.models:
            raise ValueError(
                f"two models are named {name!r}; name runs explicitly with --run NAME=PATH"
            )

    def _base(self, base: str) -> LlmBase:
        if base not in self.bases:
            from ecomlm.methods.llm.causal_lm import load_llm

            model, tokenizer = load_llm(base, dtype=self.dtype, device=self.device)
            self.bases[base] = LlmBase(base, model, tokenizer)
        return self.bases[base]

    def add_base(self, base: str) -> ServedModel:
        """Serve a plain base LLM (chat only) under its name."""
        self._base(base)
        if base in self.models:  # already listed through an adapter run's base
            return self.models[base]
        served = ServedModel(name=base, method="base", task=None, base=base)
        self.models[base] = served
        return served

    def add_run(self, run_dir: str | Path, name: str | None = None) -> ServedModel:
        run = Path(run_dir)
        if not run.is_dir():
            raise FileNotFoundError(f"run folder {run} not found")
        header = read_header(run)
        name = name or run.name
        self._check_name(name)
        task = get_task(header["task"], **(header.get("task_options") or {}))
        base = adapter_base(header)
        served = ServedModel(
            name=name,
            method=header["method"],
            task=task,
            run_dir=str(run),
            base=base,
            config=dict(header.get("config") or {}),
        )
        if base is not None:
            llm = self._base(base)
            llm.attach(name, adapter_dir(header["_model_dir"]))
            served.loaded = lora_predictor(task, header, llm)
            if base not in self.models:  # the base itself is chat-able too
                self.models[base] = ServedModel(name=base, method="base", task=None, base=base)
        else:
            from ecomlm.methods import load_method

            served.loaded = load_method(header["_model_dir"])
        self.models[name] = served
        return served

    # ---------------------------------------------------------------- lookup
    def get(self, name: str) -> ServedModel:
        if name not in self.models:
            raise UnknownModelError(
                f"unknown model {name!r}; available: {', '.join(sorted(self.models)) or 'none'}"
            )
        return self.models[name]

    def task_models(self, task: str) -> list[ServedModel]:
        return [m for m in self.models.values() if m.task is not None and m.task.name == task]

    def tasks(self) -> dict[str, Task]:
        """Served task name -> task instance (the first run's, for the schema)."""
        out: dict[str, Task] = {}
        for m in self.models.values():
            if m.task is not None:
                out.setdefault(m.task.name, m.task)
        return out

    def resolve(self, task: str, model: str | None) -> ServedModel:
        """The model that answers ``task`` (the first run given for it when ``model`` is None)."""
        candidates = self.task_models(task)
        if not candidates:
            raise UnknownModelError(f"no served model for task {task!r}")
        if model is None:
            return candidates[0]
        for m in candidates:
            if m.name == model:
                return m
        raise UnknownModelError(
            f"model {model!r} does not serve task {task!r}; "
            f"available: {', '.join(m.name for m in candidates)}"
        )

    # ---------------------------------------------------------------- inference
    def predict(self, name: str, examples: list[Any]) -> list[Prediction]:
        served = self.get(name)
        if served.task is None:
            raise ValueError(f"model {name!r} is a base LLM without a task; use chat")
        if served.base is None:
            predictions = served.loaded.predict(examples)
        else:
            with self.bases[served.base].active(name):
                predictions = lora_predict(served.loaded, examples)
        if len(predictions) != len(examples):
            raise RuntimeError(
                f"{name}: {len(predictions)} predictions for {len(examples)} examples"
            )
        return predictions

    def context_limit(self, name: str) -> int:
        """Tokens the chat model's context holds (prompt + completion)."""
        llm = self.bases[self.get(name).base]
        config_limit = getattr(llm.model.config, "max_position_embeddings", None) or 2048
        tok_limit = getattr(llm.tokenizer, "model_max_length", None) or config_limit
        return int(min(config_limit, tok_limit))

    def prompt_tokens(self, name: str, messages: Messages) -> int:
        from ecomlm.methods.llm.causal_lm import encode, prompt_text

        tokenizer = self.bases[self.get(name).base].tokenizer
        return len(encode(tokenizer, prompt_text(tokenizer, messages)))

    def chat(
        self,
        name: str,
        conversations: list[Messages],
        max_tokens: int,
        stop: Sequence[str] = (),
        deadline: float | None = None,
    ) -> list[ChatOutput]:
        served = self.get(name)
        if not served.can_chat:
            raise ValueError(
                f"model {name!r} is a {served.method!r} run, not a chat model; "
                "use POST /v1/tasks/{task}/predict"
            )
        llm = self.bases[served.base]
        adapter = None if served.method == "base" else name
        with llm.active(adapter) as model:
            return chat_generate(model, llm.tokenizer, conversations, max_tokens, stop, deadline)


def lora_predictor(task: Task, header: dict, llm: LlmBase) -> Any:
    """A ``LoraMethod`` with the run's inference options whose model is the shared base."""
    from ecomlm.methods.llm.lora import LoraMethod

    known = {f.name for f in dataclasses.fields(LoraMethod.Config)}
    options = {k: v for k, v in (header.get("config") or {}).items() if k in known}
    options["base_model"] = llm.name
    options.pop("adapter_path", None)
    method = LoraMethod(task, config_from_dict(LoraMethod.Config, options))
    method.model, method.tokenizer = llm.model, llm.tokenizer
    return method


def lora_predict(method: Any, examples: list[Any]) -> list[Prediction]:
    """``LoraMethod.predict`` with the adapter left unmerged in the shared base."""
    return method.predict(examples, merge=False)


def chat_generate(
    model: Any,
    tokenizer: Any,
    conversations: list[Messages],
    max_tokens: int,
    stop: Sequence[str] = (),
    deadline: float | None = None,
) -> list[ChatOutput]:
    """Greedy completion of each conversation in one batch, with token counts for ``usage``;
    generation stops at ``deadline`` (``time.monotonic()``) so a request nobody waits for
    any more frees the worker; its outputs say ``timed_out``."""
    import torch
    from transformers import StoppingCriteriaList

    from ecomlm.methods.llm.causal_lm import encode, left_padded, prompt_text, stop_token_ids
    from ecomlm.serve.deadline import DeadlineCriteria

    encoded = [encode(tokenizer, prompt_text(tokenizer, c)) for c in conversations]
    device = next(model.parameters()).device
    inputs = left_padded(tokenizer, encoded, device)
    stops = stop_token_ids(model, tokenizer)
    at_deadline = DeadlineCriteria(deadline)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stops,
            stopping_criteria=StoppingCriteriaList([at_deadline]),
        )
    results = []
    for ids, row in zip(encoded, out[:, inputs["input_ids"].shape[1] :].tolist(), strict=True):
        cut = next((j for j, t in enumerate(row) if t in stops), None)
        finish = "length" if cut is None else "stop"
        row = row if cut is None else row[:cut]
        text = tokenizer.decode(row, skip_special_tokens=True).strip()
        for s in stop:
            if s and s in text:
                text, finish = text[: text.index(s)], "stop"
        timed_out = at_deadline.reached and cut is None  # cut short, not ended
        results.append(ChatOutput(text, len(ids), len(row), finish, timed_out))
    return results
