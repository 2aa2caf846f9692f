"""LoRA instruction tuning of a decoder LLM — the whole recipe, top to bottom.

``fit`` reads like a torchtune recipe:

1. load the base model (``llm.load_llm``) and wrap it with a PEFT LoRA adapter;
2. tokenize chat-templated examples (``lora_data``), optionally mixed with
   other tasks' training sets (temperature sampling);
3. per epoch, length-bucketed batches (almost no padding), sharded across
   processes; the loss runs the decoder, gathers the hidden states of answer
   positions only and projects just those onto the vocabulary;
4. AdamW + warmup/decay schedule, gradient accumulation, gradient clipping;
5. every ``checkpoint_every`` steps an atomic checkpoint (adapter, optimizer,
   scheduler, RNG, step) that a re-run with the same config resumes from.

Device placement and DDP come from ``accelerate.Accelerator``: the same code
runs on one CPU (default), one GPU (``device="auto"``) or under
``accelerate launch`` / ``torchrun`` (each process takes every n-th batch;
only the main process writes). ``epochs=0`` or ``max_steps=0`` is the
zero-shot base model (the adapter stays at its no-op initialisation).

Saved layout (``save(dir)``): ``method.json`` + ``adapter/`` (standard PEFT:
``adapter_config.json`` + ``adapter_model.safetensors``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ecomlm.distributed import torch_is_main_process
from ecomlm.io import atomic_write_dir, read_json, write_json
from ecomlm.methods.base import METHOD_FILE, config_from_dict, method_from_folder, method_header
from ecomlm.methods.convergence import first_convergent_step, inherited_record
from ecomlm.methods.llm import lora_data, train_lora
from ecomlm.methods.llm.adapter_paths import ADAPTER_CONFIG, adapter_dir
from ecomlm.methods.llm.causal_lm import end_of_turn_id, generate, load_llm, score_labels
from ecomlm.methods.llm.precision import autocast, inference_autocast, resolve_precision
from ecomlm.methods.llm.train_lora import ADAPTER_DIR, STATE_FILE, AnswerOnlyLoss
from ecomlm.tasks.base import Prediction, Task

CHECKPOINT_DIR = "checkpoint"
__all__ = [  # re-exported: callers import the recipe's pieces from here
    "ADAPTER_DIR", "STATE_FILE", "AnswerOnlyLoss", "LoraMethod", "autocast",
    "inference_autocast", "resolve_precision",
]  # fmt: skip


# Config fields that do not change what training computes (left out of the
# checkpoint fingerprint, so e.g. a different work_dir still resumes).
_NOT_TRAINING = {
    "work_dir", "resume", "checkpoint_every", "esci_inference", "max_new_tokens",
    "eval_batch_size", "num_beams", "log_every", "adapter_path", "constrained", "engine",
    "share_prefix",  # the same loss either way: a checkpoint resumes under either setting
    "min_epochs", "max_seconds",  # when it may stop (a raised budget continues the fit)
}  # fmt: skip


class CheapDropout(torch.nn.Module):
    """``nn.Dropout`` for CPUs, 2.6x faster: 16 random bits per element, one ``where``.

    PyTorch's CPU dropout draws a float Bernoulli per element; on LoRA's inputs
    (every linear layer's input, once per adapted module) that was 25-28 % of a
    SmolLM2 training step. Here four mask elements come from one 64-bit draw of
    the default generator (seeded like any torch RNG) and the mask is applied and
    rescaled in place. The drop probability is rounded to a multiple of 1/65536
    (p=0.05 -> 0.050003).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
        bits.random_(-(2**63), None)  # the full 64-bit range: four uniform int16s each
        keep = bits.view(torch.int16)[:n].view(x.shape) >= round(self.p * 65536) - 32768
        return torch.where(keep, x, 0.0).mul_(1.0 / (1.0 - self.p))


def use_cheap_dropout(model: Any) -> None:
    """Swap PEFT's LoRA ``nn.Dropout`` modules for ``CheapDropout``."""
    for module in model.modules():
        drops = getattr(module, "lora_dropout", None)
        if isinstance(drops, torch.nn.ModuleDict):
            for key, drop in drops.items():
                if isinstance(drop, torch.nn.Dropout) and drop.p > 0:
                    drops[key] = CheapDropout(drop.p)


class LoraMethod:
    """LoRA instruction tuning (single- or mixed-task) with label scoring / generation."""

    name = "lora"
    # what it is (``ecomlm.methods.base.MethodInfo``)
    family = "llm"
    adapter = True
    uses_llm = True
    lr_grid = (1e-4, 3e-4, 1e-3)
    estimate = (15.0, 0.5, 0.3)  # per train step x batch size

    @staticmethod
    def fits_nothing(config: dict[str, Any]) -> bool:
        """Zero-shot (``max_steps: 0``): the base model as is, nothing to tune."""
        return config.get("max_steps") == 0

    @classmethod
    def budget_blocker(
        cls, config: dict[str, Any], n_train: int, seconds_per_example: float | None = None
    ) -> str | None:
        """Why a run of ``config`` on ``n_train`` examples can only stop on its budget (its
        score a lower bound, no finding), or None. ``seconds_per_example``: measured
        training seconds per example seen (dev evaluations included) for the time budget."""
        cfg = config_from_dict(cls.Config, config, where="method 'lora': ")
        if cls.fits_nothing(config) or cfg.adapter_path:
            return None
        if cfg.patience <= 0 or cfg.max_dev == 0:
            return "early stopping is off (patience 0 or max_dev 0)"
        per_batch = cfg.batch_size * cfg.grad_accum
        per_epoch = max(1, math.ceil(n_train / per_batch))
        total = cfg.max_steps if cfg.max_steps is not None else math.ceil(cfg.epochs * per_epoch)
        every = train_lora.eval_interval(cfg, per_epoch)
        step = first_convergent_step(
            total, every, cfg.patience, math.ceil(cfg.min_epochs * per_epoch)
        )
        if step is None:
            return (
                f"{total} steps ({per_epoch} an epoch) with dev every {every} steps cannot "
                f"hold 1 + patience {cfg.patience} evaluations past min_epochs "
                f"{cfg.min_epochs:g}: raise epochs or evaluate more often"
            )
        seconds = step * per_batch * (seconds_per_example or 0.0)
        if cfg.max_seconds and seconds > cfg.max_seconds:
            return (
                f"its earliest converged stop (step {step}) needs ~{seconds / 60:.0f} min at "
                f"the measured {seconds_per_example:.2f} s per example, over max_seconds "
                f"({cfg.max_seconds / 60:.0f} min): a smaller train size, or more time"
            )
        return None

    @dataclass
    class Config:
        base_model: str = "smollm2"  # bundled name, local folder or HF id
        # LoRA (eCeLLM defaults)
        r: int = 16
        alpha: int = 16
        dropout: float = 0.05
        target_modules: str | list[str] = "all-linear"
        # optimisation
        lr: float = 2e-4
        scheduler: str = "cosine"  # any transformers.get_scheduler name
        warmup_ratio: float = 0.03
        weight_decay: float = 0.0
        max_grad_norm: float = 1.0
        epochs: float = 1.0  # the most epochs (early stopping on dev usually ends sooner)
        max_steps: int | None = None  # optimizer steps; overrides epochs; 0 = zero-shot
        max_seconds: float | None = None  # wall-clock training budget
        # early stopping on dev (the task's main metric unless dev_metric is set)
        patience: int = 3  # dev evaluations without a gain before stopping; 0 = off
        # early stopping never ends a run before it has seen its training set this many
        # times: a dev peak in the first steps on a small dev sample is noise, not
        # convergence (session 6: an ESCI run "converged" at 0.9 epochs with its loss
        # still at the label-guessing floor)
        min_epochs: float = 1.0
        min_delta: float = 0.0
        eval_every: int = 0  # optimizer steps between dev evaluations; 0 = 4 per epoch
        # a cap on dev evaluations per epoch (0 = none): a step interval sized for a small
        # train set would evaluate a large one 30+ times an epoch, a third of its time
        max_evals_per_epoch: int = 0
        max_dev: int = 200  # dev examples scored per evaluation (drawn across the split)
        dev_metric: str | None = None  # e.g. "f1_macro" for imbalanced classes
        # classification tasks: draw each class equally often (the label prior otherwise
        # dominates a small model's answers)
        class_balance: bool = True
        batch_size: int = 8  # examples per micro-batch (per process)
        batch_tokens: int | None = None  # also cap padded tokens per micro-batch
        grad_accum: int = 1
        max_length: int = 512
        seed: int = 0
        # mixed-task training: extra task name -> data source
        mix_tasks: dict[str, str] = field(default_factory=dict)
        mix_temperature: float = 1.0
        # use an existing adapter (run / model / PEFT folder); fit() then trains nothing
        adapter_path: str | None = None
        # inference
        esci_inference: str = "score"  # "score" | "generate"
        # label scoring: "sum" = the label sequence's log-probability (what training fits);
        # "mean" = per-token average, which favours labels of more tokens (Gemma's ESCI
        # labels are 2-5 tokens: an unsure model then answers the longest one)
        label_score: str = "sum"
        constrained: bool = True  # generated answers follow the task's answer_regex
        # generation (not label scoring): "transformers" in-process, or "llama.cpp": the
        # bundled GGUF base (re-typed f32) + this adapter converted to a GGUF LoRA
        engine: str = "transformers"
        max_new_tokens: int | None = None  # default: the task's max_new_tokens
        num_beams: int = 1
        eval_batch_size: int = 16
        # checkpointing: <work_dir>/checkpoint, else a cache folder keyed by the run
        work_dir: str | None = None
        checkpoint_every: int = 50  # optimizer steps; 0 = never
        resume: bool = True
        # hardware
        device: str = "cpu"  # "cpu" | "auto" (accelerate picks GPU / DDP rank)
        dtype: str = "float32"  # weights' dtype
        # "auto" = bf16 autocast where the hardware does bf16 matmuls natively (CPUs with
        # AVX512-BF16/AMX, bf16 GPUs), else "no"; or "no" | "bf16" | "fp16"
        mixed_precision: str = "auto"
        gradient_checkpointing: bool = False
        # training runs the prompts' shared prefix (system prompt + instruction) once per
        # batch: the same loss and gradients for 0.3x (QueryNER) to 0.9x of the compute
        share_prefix: bool = True
        log_every: int = 10

    def __init__(self, task: Task, config: LoraMethod.Config | None = None) -> None:
        self.task = task
        self.config = config or self.Config()
        self._check_config()
        self.model: Any = None
        self.tokenizer: Any = None
        self.history: list[dict[str, float]] = []
        self.extra_cost: dict[str, Any] = {}
        self._engine: tuple[str, Any] | None = None  # (adapter fingerprint, llama.cpp engine)
        self.resumed_from = 0
        self.training_record: dict[str, Any] = {}

    def _check_config(self) -> None:
        cfg = self.config
        if cfg.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(
                "method 'lora': mixed_precision must be 'auto', 'no', 'bf16' or 'fp16', "
                f"not {cfg.mixed_precision!r}"
            )
        if cfg.engine not in ("transformers", "llama.cpp"):
            raise ValueError(f"engine must be 'transformers' or 'llama.cpp', not {cfg.engine!r}")
        if cfg.label_score not in ("sum", "mean"):
            raise ValueError(f"label_score must be 'sum' or 'mean', not {cfg.label_score!r}")
        if cfg.esci_inference not in ("score", "generate"):
            raise ValueError(
                f"esci_inference must be 'score' or 'generate', not {cfg.esci_inference!r}"
            )
        for name in ("r", "batch_size", "grad_accum", "max_length", "eval_batch_size"):
            if getattr(cfg, name) < 1:
                raise ValueError(f"method 'lora': {name} must be >= 1, got {getattr(cfg, name)}")
        if cfg.max_steps is not None and cfg.max_steps < 0:
            raise ValueError(f"method 'lora': max_steps must be >= 0, got {cfg.max_steps}")
        if cfg.epochs < 0:
            raise ValueError(f"method 'lora': epochs must be >= 0, got {cfg.epochs}")

    # ------------------------------------------------------------------ model
    def _load(self, adapter: str | Path | None, trainable: bool) -> None:
        from peft import LoraConfig, PeftModel, get_peft_model

        model, tokenizer = load_llm(self.config.base_model, dtype=self.config.dtype)
        if adapter is not None:
            model = PeftModel.from_pretrained(
                model, str(adapter_dir(adapter)), is_trainable=trainable
            )
        else:
            cfg = self.config
            lora = LoraConfig(
                r=cfg.r,
                lora_alpha=cfg.alpha,
                lora_dropout=cfg.dropout,
                target_modules=cfg.target_modules,
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
            if cfg.device == "cpu":  # GPUs have a fused dropout kernel
                use_cheap_dropout(model)
        self.model, self.tokenizer = model, tokenizer

    # ------------------------------------------------------------------ data
    def _training_examples(
        self, train: list[Any]
    ) -> tuple[dict[str, list[lora_data.TrainExample]], dict[str, list[float]]]:
        """Tokenized training examples per task (this task + ``mix_tasks``), and the
        class-balancing sampling weights of each classification task's group."""
        cfg, tok = self.config, self.tokenizer
        eot = end_of_turn_id(tok)
        groups = {
            self.task.name: [
                lora_data.encode_example(tok, self.task, ex, cfg.max_length, eot) for ex in train
            ]
        }
        weights = {self.task.name: self._class_weights(self.task, train)}
        if cfg.mix_tasks:
            from ecomlm.data import load_splits, subsample
            from ecomlm.tasks import get_task

            for name, source in cfg.mix_tasks.items():
                if name == self.task.name:
                    raise ValueError(f"mix_tasks repeats the run's own task {name!r}")
                task = get_task(name)
                extra = load_splits(name, source)["train"]
                extra = subsample(extra, min(len(train), len(extra)), seed=cfg.seed, task=task)
                groups[name] = [
                    lora_data.encode_example(tok, task, ex, cfg.max_length, eot) for ex in extra
                ]
                weights[name] = self._class_weights(task, extra)
        return groups, {name: w for name, w in weights.items() if w}

    def _class_weights(self, task: Task, examples: list[Any]) -> list[float]:
        if not (self.config.class_balance and task.labels):
            return []
        return lora_data.class_weights([str(task.gold(ex)) for ex in examples])

    # ------------------------------------------------------------------ fit
    def fit(self, train: list[Any], dev: list[Any] | None = None) -> LoraMethod:
        """Train the adapter on ``train`` with early stopping on ``dev`` (the recipe is
        ``train_lora.train``); with ``adapter_path`` load that adapter and train nothing."""
        cfg = self.config
        if cfg.adapter_path is not None:
            self._load(cfg.adapter_path, trainable=False)
            self.extra_cost = {"adapter_path": str(adapter_dir(cfg.adapter_path))}
            self.training_record = inherited_record([adapter_dir(cfg.adapter_path)])
            return self
        train_lora.train(self, train, dev)
        return self

    def _fingerprint(self, groups: dict[str, list[lora_data.TrainExample]], world: int) -> str:
        """Hash of everything that shapes training: config, task, data, process count."""
        cfg = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in _NOT_TRAINING}
        h = hashlib.sha256()
        h.update(
            json.dumps(
                [cfg, self.task.name, getattr(self.task, "options", {}), world],
                sort_keys=True,
                default=str,
            ).encode()
        )
        for name in sorted(groups):
            h.update(name.encode())
            for ex in groups[name]:
                h.update(json.dumps([ex.n_prompt, ex.input_ids]).encode())
        return h.hexdigest()

    def _checkpoint_dir(self, fingerprint: str) -> Path | None:
        if not self.config.checkpoint_every:
            return None
        if self.config.work_dir:
            return Path(self.config.work_dir) / CHECKPOINT_DIR
        from ecomlm.models import cache_dir

        return cache_dir() / "lora-checkpoints" / fingerprint[:16]

    @torch.no_grad()
    def loss(self, examples: list[Any]) -> float:
        """Mean answer-token cross-entropy of the current model on ``examples`` (e.g. dev)."""
        if self.model is None:
            raise RuntimeError("method 'lora' is not fitted: call fit() or load() first")
        cfg, tok = self.config, self.tokenizer
        eot = end_of_turn_id(tok)
        encoded = [
            lora_data.encode_example(tok, self.task, ex, cfg.max_length, eot) for ex in examples
        ]
        loss_module = AnswerOnlyLoss(self.model).eval()
        device = next(self.model.parameters()).device
        total = count = 0.0
        for b in lora_data.length_batches([len(e) for e in encoded], cfg.eval_batch_size):
            batch = lora_data.collate([encoded[i] for i in b], tok.pad_token_id)
            n = batch["targets"].numel()
            total += loss_module(**{k: v.to(device) for k, v in batch.items()}).item() * n
            count += n
        return total / max(count, 1)

    # ------------------------------------------------------------------ predict
    def _max_new_tokens(self) -> int:
        if self.config.max_new_tokens is not None:
            return self.config.max_new_tokens
        return self.task.max_new_tokens

    def predict(self, examples: list[Any], merge: bool = True) -> list[Prediction]:
        """Predict; ``merge=False`` keeps the adapter unmerged (a server sharing one base
        between adapters must not fold weights in and out per batch: lossy in bf16)."""
        if self.model is None:
            raise RuntimeError("method 'lora' is not fitted: call fit() or load() first")
        if not examples:
            return []
        cfg, tok, task = self.config, self.tokenizer, self.task
        scoring = bool(task.labels) and cfg.esci_inference == "score"
        new_tokens = 0 if scoring else self._max_new_tokens()
        budget = max(cfg.max_length - new_tokens, 16)
        prompts = [lora_data.prompt_ids(tok, task, ex, budget) for ex in examples]
        merged = _merge(self.model) if merge else False
        try:
            with inference_autocast(self.model, cfg.mixed_precision):
                if scoring:
                    labels = list(task.labels)
                    probs = score_labels(self.model, tok, prompts, labels, cfg.eval_batch_size,
                                         normalize=cfg.label_score == "mean")  # fmt: skip
                    out = []
                    for ex, p in zip(examples, probs, strict=True):
                        pred = task.parse(max(p, key=p.get), ex)
                        pred.scores = p
                        out.append(pred)
                    return out
                if cfg.engine == "llama.cpp":
                    return self._engine_predict(examples, prompts, new_tokens)
                regex = getattr(task, "answer_regex", None)
                regexes = [regex(ex) for ex in examples] if cfg.constrained and regex else None
                texts = generate(self.model, tok, prompts, new_tokens, cfg.eval_batch_size,
                                 cfg.num_beams, answer_regexes=regexes)  # fmt: skip
            return [task.parse(t, ex) for t, ex in zip(texts, examples, strict=True)]
        finally:
            if merged:
                self.model.unmerge_adapter()

    def _engine_predict(
        self, examples: list[Any], prompts: list[list[int]], new_tokens: int
    ) -> list[Prediction]:
        """Greedy answers from llama.cpp: base GGUF + this adapter as a GGUF LoRA."""
        engine = self._llama_cpp_engine()
        grammar = getattr(self.task, "answer_grammar", None)
        texts = [engine.complete(ids, new_tokens, grammar(ex) if grammar and
                                 self.config.constrained else None)[0]
                 for ids, ex in zip(prompts, examples, strict=True)]  # fmt: skip
        return [self.task.parse(t, ex) for t, ex in zip(texts, examples, strict=True)]

    def _llama_cpp_engine(self) -> Any:
        """The engine for the adapter's current weights: built (adapter saved, converted,
        GGUF loaded: seconds) only when they changed since the last call, so a served
        model or a repeated evaluation reuses it; training steps invalidate it."""
        import hashlib
        import tempfile

        from ecomlm.methods.llm.engine import LlamaCppEngine

        digest = hashlib.blake2b(digest_size=16)
        for name, tensor in sorted(self.model.state_dict().items()):
            if "lora_" in name:
                digest.update(name.encode())
                digest.update(tensor.detach().float().cpu().numpy().tobytes())
        key = digest.hexdigest()
        if self._engine is not None and self._engine[0] == key:
            return self._engine[1]
        if self._engine is not None:
            self._engine[1].close()
            self._engine = None
        with tempfile.TemporaryDirectory() as tmp:
            self.model.save_pretrained(tmp)
            engine = LlamaCppEngine(self.config.base_model, adapter=tmp)
        self._engine = (key, engine)
        return engine

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> None:
        if self.model is None:
            raise RuntimeError("method 'lora' is not fitted: nothing to save")
        if not torch_is_main_process():  # DDP: rank 0 writes, the others hold the same weights
            return
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        _save_adapter(self.model, out / ADAPTER_DIR)
        write_json(out / METHOD_FILE, method_header(self))

    @classmethod
    def load(cls, path: str | Path) -> LoraMethod:
        method, _ = method_from_folder(cls, path)
        method._load(Path(path) / ADAPTER_DIR, trainable=False)
        method.model.eval()
        return method

    @classmethod
    def from_adapter(
        cls, task: Task, adapter: str | Path, base_model: str | None = None, **config: Any
    ) -> LoraMethod:
        """A ready-to-predict method over ``base_model`` + an existing adapter folder."""
        folder = adapter_dir(adapter)
        if base_model is None:
            base_model = read_json(folder / ADAPTER_CONFIG)["base_model_name_or_path"]
        config = {k: v for k, v in config.items() if v is not None}
        cfg = config_from_dict(
            cls.Config, {**config, "base_model": base_model, "adapter_path": str(folder)}
        )
        return cls(task, cfg).fit([])


# --------------------------------------------------------------------------- helpers


def _merge(model: Any) -> bool:
    """Fold LoRA weights into the base weights for faster inference (undone after)."""
    if hasattr(model, "merge_adapter") and not getattr(model.base_model, "merged", False):
        model.merge_adapter()
        return True
    return False


def _save_adapter(model: Any, target: Path) -> None:
    """PEFT ``save_pretrained`` into a temp folder, then swapped in (never half-written)."""
    atomic_write_dir(target, lambda tmp: model.save_pretrained(str(tmp)))
