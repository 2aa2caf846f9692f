"""How related are LoRA adapters? Pairwise similarity of their weights.

For every pair of adapters and every adapted module (layer x module type):

* ``cos_delta``: cosine similarity of the weight updates ``dW = (alpha/r) B A``
  (computed without forming ``dW``: ``<B1 A1, B2 A2> = tr((B1^T B2)(A2 A1^T))``);
* ``cos_A`` / ``cos_B``: cosine of the flattened A (resp. B) matrices; NaN when
  the shapes differ (different ranks). Note that ``B A = (B R)(R^-1 A)``: A and B
  are only comparable when the adapters share A's random initialisation;
* ``overlap_delta`` / ``overlap_B``: principal-angle overlap of the column
  spaces of the two ``dW``'s (resp. B's): the mean ``cos^2`` of the principal
  angles, ``||Q1^T Q2||_F^2 / min(k1, k2)`` for orthonormal bases Q. 1 = same
  subspace, ~``k/d`` for random subspaces of dimension k in R^d.

"Overall" numbers use the flattened concatenation of all common modules for
the cosines and the mean over modules for the overlaps; per-layer rows
(``module == "all"``) do the same within one layer.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecomlm.io import atomic_path
from ecomlm.methods.llm.merge import AdapterSource, resolve_adapter

METRICS = ("cos_delta", "cos_A", "cos_B", "overlap_delta", "overlap_B")
_LAYER = re.compile(r"\.(?:layers|layer|h|blocks)\.(\d+)\.")
_RANK_TOL = 1e-5  # singular values below this share of the largest count as zero


@dataclass
class ModuleFactors:
    a: np.ndarray  # (r, d_in)
    b: np.ndarray  # (d_out, r)
    scale: float  # alpha / r (or alpha / sqrt(r) with rsLoRA)
    layer: int  # -1 when the path names no layer
    kind: str  # module type, e.g. q_proj
    _bases: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def basis(self, which: str) -> np.ndarray:
        """Orthonormal basis of the column space of dW (``"delta"``) or of B (``"B"``)."""
        if which not in self._bases:
            q, r = np.linalg.qr(self.b)
            m = r @ self.a if which == "delta" else r
            u, s, _ = np.linalg.svd(m, full_matrices=False)
            k = int((s > _RANK_TOL * s[0]).sum()) if s.size and s[0] > 0 else 0
            self._bases[which] = q @ u[:, :k]
        return self._bases[which]


@dataclass
class AdapterWeights:
    name: str
    task: str | None
    source: AdapterSource
    modules: dict[str, ModuleFactors]  # module path -> factors


def _scale(config: dict, module: str, rank: int) -> float:
    alpha = config.get("lora_alpha", rank)
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.search(rf"(^|\.){pattern}$", module):
            alpha = value
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def load_adapter_weights(path: str | Path, name: str | None = None) -> AdapterWeights:
    """A and B of every LoRA module of the adapter in a run / model / PEFT folder."""
    from safetensors.numpy import load_file

    source = resolve_adapter(path)
    files = sorted(source.path.glob("adapter_model*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{source.path}: no adapter_model.safetensors")
    tensors: dict[str, np.ndarray] = {}
    for file in files:
        tensors.update(load_file(file))
    modules: dict[str, ModuleFactors] = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue  # lora_embedding_* and modules_to_save are not compared
        module = key.removesuffix(".lora_A.weight").removeprefix("base_model.model.")
        b_key = key.replace(".lora_A.weight", ".lora_B.weight")
        if b_key not in tensors:
            raise ValueError(f"{files[0]}: {key} has no matching {b_key}")
        a64, b64 = a.astype(np.float64), tensors[b_key].astype(np.float64)
        layer = _LAYER.search(f".{module}.")
        modules[module] = ModuleFactors(
            a=a64,
            b=b64,
            scale=_scale(source.peft_config, module, a64.shape[0]),
            layer=int(layer.group(1)) if layer else -1,
            kind=module.rsplit(".", 1)[-1],
        )
    if not modules:
        raise ValueError(f"{source.path}: no LoRA A/B weights found")
    return AdapterWeights(name or source.name, source.task, source, modules)


def _cos(dot: float, n1: float, n2: float) -> float:
    return dot / math.sqrt(n1 * n2) if n1 > 0 and n2 > 0 else float("nan")


def _overlap(q1: np.ndarray, q2: np.ndarray) -> float:
    k = min(q1.shape[1], q2.shape[1])
    if k == 0:
        return float("nan")
    return float(np.linalg.norm(q1.T @ q2) ** 2 / k)


def _module_stats(x: ModuleFactors, y: ModuleFactors) -> dict[str, float]:
    """Raw inner products and norms (summable over modules) plus overlaps."""
    sx, sy = x.scale, y.scale

    def delta_dot(p: ModuleFactors, q: ModuleFactors, s: float) -> float:
        return float(np.sum((p.b.T @ q.b) * (q.a @ p.a.T).T) * s)

    stats = {
        "dot_delta": delta_dot(x, y, sx * sy),
        "nx_delta": delta_dot(x, x, sx * sx),
        "ny_delta": delta_dot(y, y, sy * sy),
        "overlap_delta": _overlap(x.basis("delta"), y.basis("delta")),
        "overlap_B": _overlap(x.basis("B"), y.basis("B")),
    }
    for m in ("a", "b"):
        px, py = getattr(x, m), getattr(y, m)
        same = px.shape == py.shape
        stats[f"dot_{m.upper()}"] = float(np.sum(px * py)) if same else float("nan")
        stats[f"nx_{m.upper()}"] = float(np.sum(px * px)) if same else float("nan")
        stats[f"ny_{m.upper()}"] = float(np.sum(py * py)) if same else float("nan")
    return stats


def _summarize(stats: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for m in ("delta", "A", "B"):
        out[f"cos_{m}"] = _cos(*(sum(s[f"{p}_{m}"] for s in stats) for p in ("dot", "nx", "ny")))
    for m in ("overlap_delta", "overlap_B"):
        values = [s[m] for s in stats if not math.isnan(s[m])]
        out[m] = float(np.mean(values)) if values else float("nan")
    return out


def compare_adapters(x: AdapterWeights, y: AdapterWeights) -> tuple[dict, list[dict]]:
    """(overall similarity, per-module and per-layer rows) of two adapters."""
    common = [m for m in x.modules if m in y.modules]
    if not common:
        raise ValueError(f"adapters {x.name} and {y.name} share no LoRA module")
    for m in common:
        if x.modules[m].a.shape[1] != y.modules[m].a.shape[1] or (
            x.modules[m].b.shape[0] != y.modules[m].b.shape[0]
        ):
            raise ValueError(
                f"{x.name} and {y.name}: module {m} has different shapes (other base?)"
            )
    per_module = {m: _module_stats(x.modules[m], y.modules[m]) for m in common}
    rows = []
    for m, stats in per_module.items():
        info = x.modules[m]
        rows.append({"layer": info.layer, "module": info.kind, "path": m, **_summarize([stats])})
    for layer in sorted({x.modules[m].layer for m in common}):
        in_layer = [per_module[m] for m in common if x.modules[m].layer == layer]
        rows.append({"layer": layer, "module": "all", "path": "", **_summarize(in_layer)})
    overall = {**_summarize(list(per_module.values())), "modules": len(common)}
    return overall, rows


def _unique_names(adapters: list[AdapterWeights]) -> None:
    seen: dict[str, int] = {}
    for adapter in adapters:
        if adapter.name in seen:
            seen[adapter.name] += 1
            adapter.name = f"{adapter.name}#{seen[adapter.name]}"
        else:
            seen[adapter.name] = 0


def _write_csv(path: Path, rows: list[dict]) -> None:
    import io

    from ecomlm.io import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def plot_heatmaps(
    matrices: dict[str, np.ndarray], labels: list[str], path: Path, title: str = ""
) -> None:
    """One adapter x adapter heatmap panel per metric, values written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    size = max(3.5, 0.7 * n + 2)
    fig, axes = plt.subplots(1, len(matrices), figsize=(size * len(matrices), size), squeeze=False)
    for ax, (metric, matrix) in zip(axes[0], matrices.items(), strict=True):
        low = -1.0 if metric.startswith("cos") else 0.0
        image = ax.imshow(matrix, vmin=low, vmax=1.0, cmap="RdBu_r" if low < 0 else "viridis")
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        ax.set_title(metric)
        for i in range(n):
            for j in range(n):
                if not math.isnan(matrix[i, j]):
                    value = matrix[i, j]
                    dark = value < 0.5 if low == 0 else abs(value) > 0.6
                    color = "white" if dark else "black"
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color=color)
        fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_layer_curves(layer_rows: list[dict], path: Path) -> None:
    """Per pair of adapters: similarity of each layer's update (cos dW and overlap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    pairs = sorted({(r["adapter_a"], r["adapter_b"]) for r in layer_rows})
    for a, b in pairs:
        rows = sorted((r for r in layer_rows if (r["adapter_a"], r["adapter_b"]) == (a, b)),
                      key=lambda r: r["layer"])  # fmt: skip
        layers = [r["layer"] for r in rows]
        for ax, metric in zip(axes, ("cos_delta", "overlap_delta"), strict=True):
            ax.plot(layers, [r[metric] for r in rows], marker="o", ms=3, label=f"{a} / {b}")
    for ax, metric in zip(axes, ("cosine of dW", "subspace overlap of dW"), strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)


def analyze_adapters(paths: list[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Pairwise similarity of all adapters; writes CSVs and PNGs, returns their paths."""
    if len(paths) < 2:
        raise ValueError(f"need at least two adapters to compare, got {len(paths)}")
    adapters = [load_adapter_weights(p) for p in paths]
    _unique_names(adapters)
    out = Path(out_dir)
    n = len(adapters)
    matrices = {m: np.eye(n) for m in METRICS}
    pair_rows, module_rows = [], []
    for i in range(n):
        for j in range(i + 1, n):
            x, y = adapters[i], adapters[j]
            overall, rows = compare_adapters(x, y)
            ids = {"adapter_a": x.name, "adapter_b": y.name, "task_a": x.task, "task_b": y.task}
            pair_rows.append({**ids, **overall})
            module_rows += [{"adapter_a": x.name, "adapter_b": y.name, **r} for r in rows]
            for m in METRICS:
                matrices[m][i, j] = matrices[m][j, i] = overall[m]
    names = [a.name for a in adapters]
    files = {"pairs": out / "pairs.csv", "per_module": out / "per_module.csv"}
    _write_csv(files["pairs"], pair_rows)
    _write_csv(files["per_module"], module_rows)
    for m in METRICS:
        files[f"matrix_{m}"] = out / f"matrix_{m}.csv"
        _write_csv(
            files[f"matrix_{m}"],
            [{"adapter": a, **dict(zip(names, map(float, row), strict=True))}
             for a, row in zip(names, matrices[m], strict=True)],
        )  # fmt: skip
    labels = [f"{a.name}" if a.task in (None, a.name) else f"{a.name} ({a.task})" for a in adapters]
    files["heatmap"] = out / "similarity_heatmap.png"
    plot_heatmaps(
        {"cos_delta": matrices["cos_delta"], "overlap_delta": matrices["overlap_delta"]},
        labels,
        files["heatmap"],
        "LoRA adapter similarity (dW = B A alpha/r)",
    )
    files["layers"] = out / "layer_similarity.png"
    plot_layer_curves([r for r in module_rows if r["module"] == "all"], files["layers"])
    return files
