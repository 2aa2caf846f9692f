"""Merged adapters must equal a direct numpy computation of PEFT's documented merge rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from ecomlm.methods.llm.merge import (
    MergedLoraMethod,
    check_compatible,
    merge_adapters,
    resolve_adapter,
)

TARGETS = ("q_proj", "v_proj")


def make_adapter(base: str, out: Path, seed: int, r: int = 4, alpha: int = 8, targets=TARGETS):
    """A PEFT LoRA adapter on ``base`` with random (non-zero) A and B."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0)
    model = get_peft_model(model, config)
    for name, param in model.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.5)
    model.save_pretrained(out)
    return out


def lora_weights(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """module path -> (A, B, scaling) from a saved PEFT folder."""
    config = json.loads((folder / "adapter_config.json").read_text())
    tensors = load_file(folder / "adapter_model.safetensors")
    out = {}
    for key, a in tensors.items():
        if ".lora_A." in key:
            module = re.sub(r"\.lora_A\.weight$", "", key)
            b = tensors[key.replace("lora_A", "lora_B")]
            out[module] = (
                a.astype(np.float64),
                b.astype(np.float64),
                config["lora_alpha"] / config["r"],
            )
    return out


def delta(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    return s * b @ a


@pytest.fixture(scope="module")
def adapters(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": make_adapter(tiny_llama, root / "a", seed=1, r=4, alpha=8),
        "b": make_adapter(tiny_llama, root / "b", seed=2, r=4, alpha=4),
        "c": make_adapter(tiny_llama, root / "c", seed=3, r=2, alpha=8),  # other rank
    }


def _inputs(adapters, *names):
    return [lora_weights(adapters[n]) for n in names]


def test_linear_matches_peft_definition(adapters, tmp_path):
    weights = [0.7, -0.3]  # a negative weight: its sign goes on A only
    out = merge_adapters([adapters["a"], adapters["b"]], weights, "linear", out_dir=tmp_path / "m")
    merged = lora_weights(out)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 4
    (wa, wb), inputs = weights, _inputs(adapters, "a", "b")
    for module, (a_m, b_m, s_m) in merged.items():
        (a1, b1, s1), (a2, b2, s2) = inputs[0][module], inputs[1][module]
        k1, k2 = wa * s1, wb * s2
        a_exp = np.sign(k1) * np.sqrt(abs(k1)) * a1 + np.sign(k2) * np.sqrt(abs(k2)) * a2
        b_exp = np.sqrt(abs(k1)) * b1 + np.sqrt(abs(k2)) * b2
        np.testing.assert_allclose(a_m, a_exp, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b_m, b_exp, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(delta(a_m, b_m, s_m), b_exp @ a_exp, rtol=1e-4, atol=1e-5)
    assert set(merged) == set(inputs[0])


def test_cat_is_exact_weighted_sum_of_deltas(adapters, tmp_path):
    weights = [0.5, 1.5]
    out = merge_adapters([adapters["a"], adapters["c"]], weights, "cat", out_dir=tmp_path / "m")
    merged, inputs = lora_weights(out), _inputs(adapters, "a", "c")
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4 + 2
    for module, (a_m, b_m, s_m) in merged.items():
        expected = sum(w * delta(*inp[module]) for w, inp in zip(weights, inputs, strict=True))
        np.testing.assert_allclose(delta(a_m, b_m, s_m), expected, rtol=1e-4, atol=1e-5)


def test_svd_is_best_rank_k_approximation(adapters, tmp_path):
    weights, k = [1.0, 0.5], 3
    out = merge_adapters(
        [adapters["a"], adapters["c"]], weights, "svd", svd_rank=k, out_dir=tmp_path / "m"
    )
    merged, inputs = lora_weights(out), _inputs(adapters, "a", "c")
    for module, (a_m, b_m, s_m) in merged.items():
        got = delta(a_m, b_m, s_m)
        total = sum(w * delta(*inp[module]) for w, inp in zip(weights, inputs, strict=True))
        u, sv, vt = np.linalg.svd(total)
        best = (u[:, :k] * sv[:k]) @ vt[:k]
        assert np.linalg.matrix_rank(got, tol=1e-4 * sv[0]) == k
        np.testing.assert_allclose(got, best, rtol=1e-3, atol=1e-4 * sv[0])


def _np_prune_top(x: np.ndarray, density: float) -> np.ndarray:
    k = int(density * x.size)
    keep = np.zeros(x.size, bool)
    keep[np.argsort(-np.abs(x).ravel(), kind="stable")[:k]] = True
    return x * keep.reshape(x.shape)


def _np_ties(tensors: list[np.ndarray], weights: list[float], density: float) -> np.ndarray:
    pruned = np.stack([_np_prune_top(t, density) for t in tensors])
    majority = np.where(pruned.sum(0) >= 0, 1.0, -1.0)
    agree = np.sign(pruned) == majority
    weighted = pruned * np.array(weights).reshape(-1, 1, 1)
    return (weighted * agree).sum(0) / np.maximum(agree.sum(0), 1)


def _factor_weights(weights, inputs, module):
    ws = [w * inp[module][2] for w, inp in zip(weights, inputs, strict=True)]
    return [np.sign(w) * np.sqrt(abs(w)) for w in ws], [np.sqrt(abs(w)) for w in ws]


def test_ties_and_magnitude_prune_match_numpy(adapters, tmp_path):
    weights, density = [0.6, 0.4], 0.5
    inputs = _inputs(adapters, "a", "b")
    for combination in ("ties", "magnitude_prune"):
        out = merge_adapters(
            [adapters["a"], adapters["b"]],
            weights,
            combination,
            density=density,
            out_dir=tmp_path / combination,
        )
        for module, (a_m, b_m, _) in lora_weights(out).items():
            wa, wb = _factor_weights(weights, inputs, module)
            for got, idx, w in ((a_m, 0, wa), (b_m, 1, wb)):
                tensors = [inp[module][idx] for inp in inputs]
                if combination == "ties":
                    expected = _np_ties(tensors, w, density)
                else:
                    pruned = [_np_prune_top(t, density) for t in tensors]
                    expected = sum(wi * p for wi, p in zip(w, pruned, strict=True))
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _nonzero_share(folder: Path) -> float:
    tensors = load_file(folder / "adapter_model.safetensors").values()
    return sum(int((t != 0).sum()) for t in tensors) / sum(t.size for t in tensors)


@pytest.mark.parametrize("combination", ["ties", "magnitude_prune", "dare_linear", "dare_ties"])
def test_pruning_keeps_requested_density(adapters, tmp_path, combination):
    density = 0.3
    # The same adapter twice: every pruned task vector has density d; TIES/magnitude keep
    # the same top-d entries of both, so the merge has exactly d; DARE draws independent
    # masks, so the merge holds their union, 1 - (1 - d)^2 in expectation.
    same = merge_adapters(
        [adapters["a"], adapters["a"]], [0.5, 0.5], combination, density, out_dir=tmp_path / "s"
    )
    share = _nonzero_share(same)
    if combination.startswith("dare"):
        assert share == pytest.approx(1 - (1 - density) ** 2, abs=0.06)
    else:
        per_tensor = load_file(same / "adapter_model.safetensors").values()
        assert all((t != 0).sum() == int(density * t.size) for t in per_tensor)
    # Different adapters: union of the two d-dense task vectors.
    diff = merge_adapters(
        [adapters["a"], adapters["b"]], [0.5, 0.5], combination, density, out_dir=tmp_path / "d"
    )
    assert density - 0.02 <= _nonzero_share(diff) <= 1 - (1 - density) ** 2 + 0.06


def test_dare_linear_rescales_kept_entries(adapters, tmp_path):
    weights, density = [0.5, 0.5], 0.5
    out = merge_adapters(
        [adapters["a"], adapters["b"]], weights, "dare_linear", density, out_dir=tmp_path / "m"
    )
    inputs = _inputs(adapters, "a", "b")
    for module, (a_m, _, _) in lora_weights(out).items():
        wa, _ = _factor_weights(weights, inputs, module)
        t1, t2 = (wa[i] * inputs[i][module][0] / density for i in range(2))
        # every entry is 0, t1, t2 or t1 + t2: kept entries are rescaled by 1/density
        options = np.stack([np.zeros_like(t1), t1, t2, t1 + t2])
        assert np.isclose(options, a_m[None], rtol=1e-4, atol=1e-6).any(0).all()


def test_dare_is_reproducible_with_seed(adapters, tmp_path):
    pair = [adapters["a"], adapters["b"]]
    one = merge_adapters(pair, None, "dare_ties", 0.5, out_dir=tmp_path / "1", seed=7)
    two = merge_adapters(pair, None, "dare_ties", 0.5, out_dir=tmp_path / "2", seed=7)
    for key, value in load_file(one / "adapter_model.safetensors").items():
        np.testing.assert_array_equal(value, load_file(two / "adapter_model.safetensors")[key])


def test_clear_errors(adapters, tiny_llama, tmp_path):
    pair = [adapters["a"], adapters["b"]]
    with pytest.raises(ValueError, match="equal LoRA ranks"):
        merge_adapters([adapters["a"], adapters["c"]], None, "linear", out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="needs density"):
        merge_adapters(pair, None, "ties", out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="unknown combination"):
        merge_adapters(pair, None, "average", out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="2 weights|1 weights"):
        merge_adapters(pair, [1.0], "linear", out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="at least two"):
        merge_adapters(pair[:1], None, "linear", out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="holds no LoRA adapter"):
        resolve_adapter(tmp_path)
    # different base model
    other = make_adapter(tiny_llama, tmp_path / "other", seed=5)
    config_path = other / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-360M-Instruct"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="different base models.*SmolLM2-360M"):
        merge_adapters([adapters["a"], other], None, "cat", out_dir=tmp_path / "x")
    # different target modules
    mlp = make_adapter(tiny_llama, tmp_path / "mlp", seed=6, targets=("up_proj",))
    with pytest.raises(ValueError, match="different modules"):
        check_compatible([resolve_adapter(adapters["a"]), resolve_adapter(mlp)], "cat")


def test_resolves_run_and_model_folders(adapters, tmp_path):
    import shutil

    run = tmp_path / "runs" / "esci-lora"
    shutil.copytree(adapters["a"], run / "model" / "adapter")
    header = {"method": "lora", "task": "esci", "task_options": {}, "config": {"base_model": "x"}}
    (run / "model" / "method.json").write_text(json.dumps(header))
    for given in (run, run / "model", run / "model" / "adapter"):
        source = resolve_adapter(given)
        assert source.path == run / "model" / "adapter"
        assert source.task == "esci" and source.base_model == "x"
        assert source.name == "esci-lora"


def test_method_fit_save_load(adapters, tiny_llama, tmp_path):
    from ecomlm.methods import load_method, make_method
    from ecomlm.tasks import get_task

    config = {"adapters": [str(adapters["a"]), str(adapters["b"])], "combination": "cat"}
    method = make_method("merge", get_task("esci"), config)
    assert isinstance(method, MergedLoraMethod)
    method.fit([], None)
    assert method.config.base_model == tiny_llama  # from the first adapter's config
    method.save(tmp_path / "model")
    loaded = load_method(tmp_path / "model")
    assert isinstance(loaded, MergedLoraMethod)
    assert loaded.config.combination == "cat"
    assert (tmp_path / "model" / "adapter" / "adapter_model.safetensors").is_file()
    expected = lora_weights(method.adapter_dir)
    for module, (a, b, s) in lora_weights(loaded.adapter_dir).items():
        np.testing.assert_array_equal(delta(a, b, s), delta(*expected[module]))


def _as_run(adapter: Path, run: Path, task: str, base: str) -> Path:
    """Lay an adapter out like a LoRA run folder (config.yaml + model/method.json + adapter/)."""
    import shutil

    import yaml

    shutil.copytree(adapter, run / "model" / "adapter")
    header = {"method": "lora", "task": task, "task_options": {}, "config": {"base_model": base}}
    (run / "model" / "method.json").write_text(json.dumps(header))
    spec = {"task": task, "method": "lora", "source": "synthetic:n=50", "seed": 3}
    (run / "config.yaml").write_text(yaml.safe_dump(spec))
    return run


def test_cli_merge_writes_evaluable_run(adapters, tiny_llama, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from ecomlm.cli import app
    from ecomlm.methods import load_method
    from ecomlm.runs import RunSpec

    run_a = _as_run(adapters["a"], tmp_path / "runs" / "a", "esci", tiny_llama)
    run_b = _as_run(adapters["b"], tmp_path / "runs" / "b", "queryner", tiny_llama)
    out = tmp_path / "runs" / "merged"
    args = ["merge", "--adapters", str(run_a), str(run_b), "--method", "ties"]
    args += ["--weights", "0.7", "-0.3", "--density", "0.5", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    spec = RunSpec(**yaml.safe_load((out / "config.yaml").read_text()))
    assert (spec.task, spec.method, spec.source, spec.seed) == (
        "esci",
        "merge",
        "synthetic:n=50",
        3,
    )
    assert spec.method_config["weights"] == [0.7, -0.3]
    assert spec.method_config["base_model"] == tiny_llama
    method = load_method(out / "model")
    assert method.config.combination == "ties" and method.task.name == "esci"
    assert _nonzero_share(out / "model" / "adapter") < 0.8
    # evaluate on the other task of an across-task merge
    ner = tmp_path / "runs" / "merged-ner"
    result = CliRunner().invoke(app, [*args[:-1], str(ner), "--task", "queryner"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((ner / "config.yaml").read_text())["task"] == "queryner"
    # a clear error, not a traceback
    result = CliRunner().invoke(app, ["merge", "-a", str(run_a), "-o", str(out), "-m", "linear"])
    assert result.exit_code == 2 and "at least two" in result.output


def test_cli_analyze_adapters(adapters, tiny_llama, tmp_path):
    from typer.testing import CliRunner

    from ecomlm.cli import app

    runs = tmp_path / "runs"
    _as_run(adapters["a"], runs / "a", "esci", tiny_llama)
    _as_run(adapters["b"], runs / "b", "queryner", tiny_llama)
    (runs / "bert-run").mkdir()  # no adapter: skipped
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["analyze-adapters", str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "similarity_heatmap.png").is_file() and (out / "pairs.csv").is_file()
    rows = (out / "pairs.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("a,b,esci,queryner,")


def test_expand_list_options():
    from ecomlm.analysis.commands import expand_list_options

    got = expand_list_options(["--adapters", "x", "y", "-m", "ties", "--weights", "1", "-0.5"])
    assert got == ["--adapters", "x", "--adapters", "y", "-m", "ties", "--weights", "1"] + [
        "--weights",
        "-0.5",
    ]


def test_merged_predicts_like_lora_on_equivalent_adapter(adapters, tmp_path):
    """cat with weights (1, 0) has exactly adapter a's dW: same label probabilities as LoRA."""
    from ecomlm.methods.llm.lora import LoraMethod
    from ecomlm.tasks import get_task
    from ecomlm.tasks.esci import EsciExample

    task = get_task("esci")
    examples = [
        EsciExample(
            query="red cotton shirt", product_title="Red cotton shirt 2 pack", label="Exact"
        ),
        EsciExample(query="phone case", product_title="Black leather shoes", label="Irrelevant"),
    ]
    config = MergedLoraMethod.Config(
        adapters=[str(adapters["a"]), str(adapters["b"])], weights=[1.0, 0.0], combination="cat"
    )
    merged = MergedLoraMethod(task, config).fit([], None)
    got = merged.predict(examples)
    expected = LoraMethod.from_adapter(task, adapters["a"]).predict(examples)
    assert [p.value for p in got] == [p.value for p in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.scores == pytest.approx(e.scores, abs=1e-5)
    # and differs from adapter b alone (the test can fail)
    other = LoraMethod.from_adapter(task, adapters["b"]).predict(examples)
    pairs = zip(got, other, strict=True)
    assert any(g.scores != pytest.approx(o.scores, abs=1e-5) for g, o in pairs)
