"""Open decoder LLMs: shared model plumbing, LoRA training, adapter merging."""
