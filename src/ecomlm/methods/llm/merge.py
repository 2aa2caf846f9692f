"""Merged LoRA adapters: several trained adapters -> one, via PEFT's ``add_weighted_adapter``.

Within-task merging ("model soup": adapters of one task trained on different
data slices or seeds) and across-task merging (single-task adapters of
different tasks -> one multi-task adapter) are the same operation with
different inputs. No training happens: ``fit`` only merges.

What each combination computes (PEFT 0.21, ``peft/tuners/lora/model.py``), with
``s_i = alpha_i / r_i`` the i-th adapter's scaling and ``w_i`` its weight; the
merged adapter always has ``r = lora_alpha = new_rank`` (scaling 1):

* ``linear``: ``A = sum_i sign(w_i) sqrt(|w_i s_i|) A_i``, ``B = sum_i sqrt(|w_i s_i|) B_i``,
  so ``dW = B A`` (cross terms included: a rough approximation). Equal ranks only.
* ``cat``: A's and B's stacked (rank = sum of ranks), ``dW = sum_i w_i s_i B_i A_i`` exactly.
* ``svd``: the best rank-``svd_rank`` approximation of ``sum_i w_i dW_i``.
* ``ties`` / ``dare_linear`` / ``dare_ties`` / ``magnitude_prune``: the PEFT
  task-vector merges applied to A and B separately (weights ``sqrt(|w_i s_i|)``
  as in ``linear``), pruning each task tensor to ``density``. Equal ranks only.
* ``*_svd`` variants: the same merge applied to the full ``dW_i``, then SVD-truncated.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecomlm.io import atomic_write_dir, read_json, write_json
from ecomlm.methods.base import METHOD_FILE, method_from_folder, method_header
from ecomlm.methods.convergence import inherited_record
from ecomlm.methods.llm.adapter_paths import ADAPTER_CONFIG, ADAPTER_DIR, locate_adapter
from ecomlm.tasks.base import Prediction, Task

COMBINATIONS = (
    "linear",
    "cat",
    "svd",
    "ties",
    "ties_svd",
    "dare_linear",
    "dare_ties",
    "dare_linear_svd",
    "dare_ties_svd",
    "magnitude_prune",
    "magnitude_prune_svd",
)
EQUAL_RANK = ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
WITH_DENSITY = tuple(c for c in COMBINATIONS if c.startswith(("ties", "dare", "magnitude")))


# --------------------------------------------------------------------------- inputs


@dataclass
class AdapterSource:
    """A LoRA adapter on disk plus what its saved method says about it."""

    path: Path  # the PEFT folder (adapter_config.json + adapter_model.safetensors)
    given: str  # what the user passed
    peft_config: dict
    header: dict | None = None  # method.json of the saved ecomlm method, if any

    @property
    def task(self) -> str | None:
        return self.header.get("task") if self.header else None

    @property
    def task_options(self) -> dict:
        return dict(self.header.get("task_options") or {}) if self.header else {}

    @property
    def base_model(self) -> str | None:
        config = (self.header or {}).get("config") or {}
        return config.get("base_model") or self.peft_config.get("base_model_name_or_path")

    @property
    def rank(self) -> int:
        pattern = self.peft_config.get("rank_pattern") or {}
        return max([int(self.peft_config["r"]), *map(int, pattern.values())])

    @property
    def target_modules(self) -> Any:
        modules = self.peft_config.get("target_modules")
        return sorted(modules) if isinstance(modules, list | tuple | set) else modules

    @property
    def name(self) -> str:
        """A short label: the run folder's name."""
        parts = [p for p in self.path.parts if p not in (ADAPTER_DIR, "model")]
        return parts[-1] if parts else str(self.path)


def resolve_adapter(path: str | Path) -> AdapterSource:
    """Find the PEFT adapter in a run folder, a saved ``model/`` folder or a bare adapter folder."""
    folder, method_dir = locate_adapter(path)
    config_path = folder / ADAPTER_CONFIG
    peft_config = read_json(config_path)
    if peft_config.get("peft_type", "LORA") != "LORA":
        kind = peft_config.get("peft_type")
        raise ValueError(f"{config_path}: peft_type {kind!r} is not a LoRA adapter")
    header_path = method_dir / METHOD_FILE
    header = read_json(header_path) if header_path.is_file() else None
    return AdapterSource(folder, str(path), peft_config, header)


def _normalized_base(name: str | None) -> str | None:
    """Bundled names and their de-quantized cache folders compare equal."""
    if name is None:
        return None
    from ecomlm.models import BUNDLED_LLMS, cache_dir

    for bundled in BUNDLED_LLMS:
        if name == bundled or Path(name) == cache_dir() / "models" / bundled:
            return bundled
    path = Path(name)
    return str(path.resolve()) if path.exists() else name


def check_compatible(sources: list[AdapterSource], combination: str) -> None:
    """Clear errors for adapters PEFT cannot (or should not) merge."""
    first = sources[0]
    for other in sources[1:]:
        if _normalized_base(other.base_model) != _normalized_base(first.base_model):
            raise ValueError(
                f"adapters have different base models: {first.given} is on "
                f"{first.base_model!r}, {other.given} is on {other.base_model!r}"
            )
        if other.target_modules != first.target_modules:
            raise ValueError(
                f"adapters target different modules: {first.given} has "
                f"{first.target_modules}, {other.given} has {other.target_modules}"
            )
        if combination in EQUAL_RANK and other.rank != first.rank:
            raise ValueError(
                f"combination {combination!r} needs equal LoRA ranks, but {first.given} has "
                f"r={first.rank} and {other.given} has r={other.rank}; use 'cat' or an '*svd' "
                "combination for adapters of different ranks"
            )


# --------------------------------------------------------------------------- merge


def _check_options(
    n: int, weights: list[float], combination: str, density: float | None, sign: str, svd_rank
) -> None:
    if n < 2:
        raise ValueError(f"merging needs at least two adapters, got {n}")
    if len(weights) != n:
        raise ValueError(f"got {len(weights)} weights for {n} adapters")
    if combination not in COMBINATIONS:
        raise ValueError(f"unknown combination {combination!r}; choose one of {COMBINATIONS}")
    if combination in WITH_DENSITY:
        if density is None or not 0 < density <= 1:
            raise ValueError(f"combination {combination!r} needs density in (0, 1], got {density}")
    elif density is not None:
        raise ValueError(f"density only applies to {WITH_DENSITY}, not {combination!r}")
    if sign not in ("total", "frequency"):
        raise ValueError(f"majority_sign_method must be 'total' or 'frequency', got {sign!r}")
    if svd_rank is not None and not combination.endswith("svd"):
        raise ValueError(f"svd_rank only applies to '*svd' combinations, not {combination!r}")


def merge_adapters(
    adapter_dirs: list[str | Path],
    weights: list[float] | None = None,
    combination: str = "linear",
    density: float | None = None,
    majority_sign_method: str = "total",
    out_dir: str | Path = "merged_adapter",
    base_model: str | None = None,
    svd_rank: int | None = None,
    seed: int = 0,
) -> Path:
    """Merge LoRA adapters into one, saved as a standard PEFT folder at ``out_dir``.

    ``weights`` default to ``1/n`` each. ``base_model`` defaults to the first
    adapter's (its ``method.json`` config, else its ``adapter_config.json``).
    ``seed`` fixes DARE's random pruning.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ecomlm.models import llm_path

    sources = [resolve_adapter(d) for d in adapter_dirs]
    weights = [1.0 / len(sources)] * len(sources) if weights is None else list(weights)
    _check_options(len(sources), weights, combination, density, majority_sign_method, svd_rank)
    check_compatible(sources, combination)
    base = base_model or sources[0].base_model
    if base is None:
        raise ValueError(f"{sources[0].given}: no base model recorded; pass base_model")

    model = AutoModelForCausalLM.from_pretrained(llm_path(base), dtype=torch.float32)
    names = [f"adapter_{i}" for i in range(len(sources))]
    model = PeftModel.from_pretrained(model, str(sources[0].path), adapter_name=names[0])
    for name, source in zip(names[1:], sources[1:], strict=True):
        model.load_adapter(str(source.path), adapter_name=name)
    # "default" so save_pretrained writes the files at out_dir itself, not in a subfolder.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.add_weighted_adapter(
            names,
            weights,
            adapter_name="default",
            combination_type=combination,
            svd_rank=svd_rank,
            density=density,
            majority_sign_method=majority_sign_method,
        )
    model.set_adapter("default")
    for name in names:
        model.delete_adapter(name)
    merged = model.peft_config["default"]
    # The merged weights already carry each adapter's scaling; keep the new one at 1.
    merged.use_rslora = False
    merged.base_model_name_or_path = sources[0].peft_config.get("base_model_name_or_path")
    out = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out.parent if out.parent.exists() else None, prefix=".merge"))
    try:
        model.save_pretrained(str(tmp), selected_adapters=["default"])
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp), out)  # near-atomic: a half-written adapter is never at out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- method


class MergedLoraMethod:
    """A merged LoRA adapter used exactly like a trained one (``fit`` merges, no training)."""

    name = "merge"
    # what it is (``ecomlm.methods.base.MethodInfo``): an adapter built from other runs
    family = "merge"
    trains = False
    adapter = True
    derived = True
    uses_llm = True
    estimate = (12.0, 0.0, 0.3)

    @dataclass
    class Config:
        adapters: list[str] = field(default_factory=list)  # run / model / PEFT folders
        weights: list[float] | None = None  # default: 1/n each
        combination: str = "linear"  # one of COMBINATIONS
        density: float | None = None  # ties / dare / magnitude_prune
        majority_sign_method: str = "total"  # ties variants: "total" or "frequency"
        svd_rank: int | None = None  # *svd variants; default max adapter rank
        base_model: str | None = None  # default: the first adapter's
        seed: int = 0  # DARE's random pruning
        # Prediction options, as in LoraMethod.
        esci_inference: str = "score"  # "score" | "generate"
        max_new_tokens: int | None = None  # default: the task's max_new_tokens
        eval_batch_size: int = 16
        mixed_precision: str = "auto"  # as LoraMethod's: autocast at prediction

    def __init__(self, task: Task, config: MergedLoraMethod.Config | None = None) -> None:
        self.task = task
        self.config = config or self.Config()
        self.adapter_dir: Path | None = None
        self.extra_cost: dict[str, Any] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._predictor: Any = None

    def fit(self, train: list[Any] | None = None, dev: list[Any] | None = None) -> MergedLoraMethod:
        """Merge the configured adapters (``train``/``dev`` are unused: nothing is trained)."""
        cfg = self.config
        if not cfg.adapters:
            raise ValueError("method 'merge': config.adapters is empty; list two or more adapters")
        sources = [resolve_adapter(a) for a in cfg.adapters]
        if cfg.base_model is None:
            cfg.base_model = sources[0].base_model
        self._tmp = tempfile.TemporaryDirectory(prefix="ecomlm-merge-")
        start = time.perf_counter()
        self.adapter_dir = merge_adapters(
            cfg.adapters,
            cfg.weights,
            cfg.combination,
            cfg.density,
            cfg.majority_sign_method,
            Path(self._tmp.name) / ADAPTER_DIR,
            cfg.base_model,
            cfg.svd_rank,
            cfg.seed,
        )
        self.extra_cost = {
            "merge_seconds": round(time.perf_counter() - start, 3),
            "merged_adapters": len(sources),
            "adapter_tasks": [s.task for s in sources],
        }
        self.training_record = inherited_record([s.path for s in sources])
        self._predictor = None
        return self

    def _lora(self) -> Any:
        """A LoraMethod over base + merged adapter: prediction is exactly LoRA's."""
        if self.adapter_dir is None:
            raise RuntimeError("method 'merge' is not fitted: call fit() or load() first")
        if self._predictor is None:
            from ecomlm.methods.llm.lora import LoraMethod

            self._predictor = LoraMethod.from_adapter(
                self.task,
                self.adapter_dir,
                base_model=self.config.base_model,
                esci_inference=self.config.esci_inference,
                max_new_tokens=self.config.max_new_tokens,
                eval_batch_size=self.config.eval_batch_size,
                mixed_precision=self.config.mixed_precision,
            )
        return self._predictor

    def predict(self, examples: list[Any]) -> list[Prediction]:
        return self._lora().predict(examples)

    def save(self, path: str | Path) -> None:
        if self.adapter_dir is None:
            raise RuntimeError("method 'merge' is not fitted: nothing to save")
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        target = out / ADAPTER_DIR
        if target.resolve() != self.adapter_dir.resolve():
            source = self.adapter_dir
            atomic_write_dir(target, lambda tmp: shutil.copytree(source, tmp, dirs_exist_ok=True))
        write_json(out / METHOD_FILE, method_header(self))

    @classmethod
    def load(cls, path: str | Path) -> MergedLoraMethod:
        folder = Path(path)
        header = read_json(folder / METHOD_FILE)
        if header.get("method") != cls.name:
            raise ValueError(
                f"{folder / METHOD_FILE}: method is {header.get('method')!r}, not 'merge'"
            )
        method, _ = method_from_folder(cls, folder)
        method.adapter_dir = folder / ADAPTER_DIR
        if not (method.adapter_dir / ADAPTER_CONFIG).is_file():
            raise FileNotFoundError(f"{method.adapter_dir}/{ADAPTER_CONFIG} not found")
        return method


# --------------------------------------------------------------------------- run folder


def write_merged_run(
    config: MergedLoraMethod.Config, out_dir: str | Path, task: str | None = None
) -> Path:
    """Merge and write a run-like folder: ``config.yaml`` (a RunSpec) + ``model/``.

    The task defaults to the first adapter's; data settings (source, seed,
    evaluation split) come from the run folder of the first adapter trained on
    that task, when there is one, so ``ecomlm evaluate OUT`` scores the merged
    adapter on the same data as the single-task run.
    """
    from ecomlm.io import read_yaml, write_yaml
    from ecomlm.runs import RunSpec
    from ecomlm.tasks import get_task

    sources = [resolve_adapter(a) for a in config.adapters]
    task_name = task or sources[0].task
    if task_name is None:
        raise ValueError(f"{sources[0].given}: no method.json names its task; pass a task")
    spec = RunSpec(task=task_name, method=MergedLoraMethod.name)
    for source in sources:
        if source.task != task_name:
            continue
        spec.task_options = source.task_options
        run_config = source.path.parent.parent / "config.yaml"
        if source.path.parent.name == "model" and run_config.is_file():
            run = read_yaml(run_config)
            for key in ("source", "seed", "eval_split", "max_eval"):
                if key in run:
                    setattr(spec, key, run[key])
        break
    method = MergedLoraMethod(get_task(task_name, **spec.task_options), config)
    method.fit()
    spec.method_config = dataclasses.asdict(method.config)
    out = Path(out_dir)
    method.save(out / "model")
    write_yaml(out / "config.yaml", dataclasses.asdict(spec))
    return out
