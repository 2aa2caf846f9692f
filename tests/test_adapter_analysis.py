"""Adapter similarity: known answers for self, negation, shared subspaces; files written."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from test_merge import make_adapter

from ecomlm.analysis import analyze_adapters, compare_adapters, load_adapter_weights


def _rewrite(src: Path, dst: Path, fn) -> Path:
    """Copy an adapter, transforming each (name, tensor)."""
    shutil.copytree(src, dst)
    tensors = load_file(src / "adapter_model.safetensors")
    save_file({k: fn(k, v) for k, v in tensors.items()}, dst / "adapter_model.safetensors")
    return dst


@pytest.fixture(scope="module")
def family(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    a = make_adapter(tiny_llama, root / "a", seed=1)
    b = make_adapter(tiny_llama, root / "b", seed=2)
    neg = _rewrite(a, root / "neg", lambda k, v: -v if "lora_B" in k else v)
    # same column space of B (and of dW), different mixing: B' = B M, A' = N A
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(4, 4)).astype(np.float32)
    same_space = _rewrite(
        a, root / "same_space", lambda k, v: v @ mix if "lora_B" in k else mix.T @ v
    )
    return {"a": a, "b": b, "neg": neg, "same_space": same_space}


def test_self_and_negation(family):
    a = load_adapter_weights(family["a"])
    overall, rows = compare_adapters(a, a)
    for metric in ("cos_delta", "cos_A", "cos_B", "overlap_delta", "overlap_B"):
        assert overall[metric] == pytest.approx(1.0, abs=1e-6)
    assert all(r["cos_delta"] == pytest.approx(1.0, abs=1e-6) for r in rows)
    neg, _ = compare_adapters(a, load_adapter_weights(family["neg"]))
    assert neg["cos_delta"] == pytest.approx(-1.0, abs=1e-6)
    assert neg["cos_B"] == pytest.approx(-1.0, abs=1e-6)
    assert neg["cos_A"] == pytest.approx(1.0, abs=1e-6)
    assert neg["overlap_delta"] == pytest.approx(1.0, abs=1e-6)  # same column space


def test_cosine_matches_dense_computation(family):
    a, b = load_adapter_weights(family["a"]), load_adapter_weights(family["b"])
    overall, rows = compare_adapters(a, b)
    dense = {}
    for name, ad in (("a", a), ("b", b)):
        dense[name] = {m: f.scale * f.b @ f.a for m, f in ad.modules.items()}
    flat = {k: np.concatenate([d.ravel() for d in v.values()]) for k, v in dense.items()}
    expected = flat["a"] @ flat["b"] / np.linalg.norm(flat["a"]) / np.linalg.norm(flat["b"])
    assert overall["cos_delta"] == pytest.approx(expected, rel=1e-9)
    row = next(r for r in rows if r["module"] != "all")
    x, y = dense["a"][row["path"]].ravel(), dense["b"][row["path"]].ravel()
    assert row["cos_delta"] == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def test_principal_angle_overlap(family):
    from scipy.linalg import subspace_angles

    a, same = load_adapter_weights(family["a"]), load_adapter_weights(family["same_space"])
    overall, _ = compare_adapters(a, same)
    assert overall["overlap_delta"] == pytest.approx(1.0, abs=1e-6)
    assert overall["overlap_B"] == pytest.approx(1.0, abs=1e-6)
    assert overall["cos_delta"] < 0.999  # different update, same subspace
    b = load_adapter_weights(family["b"])
    _, rows = compare_adapters(a, b)
    row = next(r for r in rows if r["module"] != "all")
    fa, fb = a.modules[row["path"]], b.modules[row["path"]]
    angles = subspace_angles(fa.scale * fa.b @ fa.a, fb.scale * fb.b @ fb.a)
    assert row["overlap_delta"] == pytest.approx(np.mean(np.cos(angles) ** 2), abs=1e-6)
    assert 0 < row["overlap_delta"] < 1


def test_analyze_writes_csv_and_png(family, tmp_path):
    paths = [family["a"], family["b"], family["neg"]]
    files = analyze_adapters(paths, tmp_path / "report")
    for key in ("pairs", "per_module", "heatmap", "layers", "matrix_cos_delta"):
        assert files[key].is_file() and files[key].stat().st_size > 0
    assert files["heatmap"].read_bytes()[:4] == b"\x89PNG"
    pairs = list(csv.DictReader(files["pairs"].open()))
    assert len(pairs) == 3
    row = next(r for r in pairs if {r["adapter_a"], r["adapter_b"]} == {"a", "neg"})
    assert float(row["cos_delta"]) == pytest.approx(-1.0, abs=1e-6)
    layers = [r for r in csv.DictReader(files["per_module"].open()) if r["module"] == "all"]
    assert sorted({int(r["layer"]) for r in layers}) == [0, 1]
    matrix = list(csv.DictReader(files["matrix_cos_delta"].open()))
    assert float(matrix[0]["a"]) == pytest.approx(1.0)


def test_rank_mismatch_gives_nan_for_factors(tiny_llama, family, tmp_path):
    c = load_adapter_weights(make_adapter(tiny_llama, tmp_path / "c", seed=3, r=2))
    overall, _ = compare_adapters(load_adapter_weights(family["a"]), c)
    assert np.isnan(overall["cos_A"]) and np.isnan(overall["cos_B"])
    assert -1 <= overall["cos_delta"] <= 1


def test_errors(family, tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        analyze_adapters([family["a"]], tmp_path)
    with pytest.raises(ValueError, match="holds no LoRA adapter"):
        load_adapter_weights(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    with pytest.raises(ValueError, match="not a LoRA adapter"):
        load_adapter_weights(tmp_path / "x")
