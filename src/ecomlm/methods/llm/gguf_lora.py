"""A PEFT LoRA adapter as a llama.cpp GGUF LoRA file, so the engine serves LoRA runs.

llama.cpp applies ``lora_b @ lora_a * alpha / r`` next to each base weight; its adapter
file holds, per adapted weight, ``<gguf tensor name>.lora_a`` (PEFT ``lora_A``, shape
``(r, in)``) and ``.lora_b`` (``lora_B``, ``(out, r)``), under ``general.type = adapter``.
Tensor names come from the ``gguf`` package's own HF-to-GGUF name map. Llama-family GGUF
files store the query and key projections with their rows permuted for llama.cpp's
rotary layout (``convert_hf_to_gguf``), so ``lora_b`` of those two gets the same
permutation. Written with ``gguf.GGUFWriter``; nothing here runs a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# architectures whose converter permutes q/k rows (convert_hf_to_gguf's LlamaModel)
PERMUTED_QK = ("llama",)


def _permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's q/k row order: per head, interleaved rotary halves."""
    shape = rows.shape
    return (
        rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )


def _base_info(base_gguf: Path) -> dict:
    from ecomlm.io import gguf_metadata

    field = gguf_metadata(base_gguf)
    arch = field("general.architecture")
    return {
        "arch": arch,
        "blocks": int(field(f"{arch}.block_count")),
        "heads": int(field(f"{arch}.attention.head_count")),
        "kv_heads": int(field(f"{arch}.attention.head_count_kv")),
    }


def lora_to_gguf(adapter_dir: str | Path, base_gguf: str | Path, out: str | Path) -> Path:
    """Write the PEFT adapter in ``adapter_dir`` as a GGUF LoRA for ``base_gguf``."""
    import gguf
    from safetensors.numpy import load_file

    from ecomlm.io import atomic_path, read_json

    adapter_dir, out = Path(adapter_dir), Path(out)
    config = read_json(adapter_dir / "adapter_config.json")
    if config.get("use_rslora") or config.get("use_dora"):
        raise ValueError(f"{adapter_dir}: rsLoRA / DoRA adapters have no llama.cpp form")
    info = _base_info(Path(base_gguf))
    arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == info["arch"]), None)
    if arch is None:
        raise ValueError(f"{base_gguf}: unknown GGUF architecture {info['arch']!r}")
    names = gguf.get_tensor_name_map(arch, info["blocks"])
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    tensors: dict[str, np.ndarray] = {}
    for key, value in sorted(weights.items()):
        if ".lora_A." not in key and ".lora_B." not in key:
            raise ValueError(f"{adapter_dir}: tensor {key!r} is not a LoRA A/B matrix")
        part = "lora_a" if ".lora_A." in key else "lora_b"
        hf_name = key.removeprefix("base_model.model.").replace(f".lora_{part[-1].upper()}", "")
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        if name is None:
            raise ValueError(f"{adapter_dir}: no GGUF tensor for {hf_name!r} ({info['arch']})")
        array = value.astype(np.float32)
        if part == "lora_b" and info["arch"] in PERMUTED_QK:
            if ".q_proj." in hf_name:
                array = _permute(array, info["heads"])
            elif ".k_proj." in hf_name:
                array = _permute(array, info["kv_heads"])
        tensors[f"{name}.{part}"] = np.ascontiguousarray(array)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(str(tmp), info["arch"])
        writer.add_string("general.type", "adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", float(config.get("lora_alpha", config["r"])))
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out
