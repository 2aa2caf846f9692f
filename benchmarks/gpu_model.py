"""A base model's architecture with random weights, for GPU machines its weights can't reach.

    python benchmarks/gpu_model.py CONFIG_DIR OUT_DIR

CONFIG_DIR holds a Hugging Face model's config and tokenizer files without the weights
(SmolLM2-135M's: 3.5 MB instead of 540 MB). Throughput depends on the architecture, not
on the weights' values, so ``gpu_check.py --base OUT_DIR`` measures real tokens/s; its
losses mean nothing.
"""

from __future__ import annotations

import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    src, dst = sys.argv[1:]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src))
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    print(f"random-weight model: {sum(p.numel() for p in model.parameters())} params -> {dst}")


if __name__ == "__main__":
    main()
