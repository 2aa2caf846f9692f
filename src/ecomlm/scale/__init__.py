"""Scale out on existing engines: distributed training, the study grid on Ray, vLLM serving.

* ``train_script``: one run under ``accelerate launch`` / ``torchrun`` (DDP, FSDP,
  DeepSpeed via ``configs/accelerate/*.yaml``); every rank trains, rank 0 writes.
* ``ray_executor``: ``ecomlm study --executor ray``; each run is a Ray task with
  its own CPU/GPU request; results flow into the usual study store.
* ``vllm_backend``: batch generation with one base model and many LoRA adapters
  (vLLM multi-LoRA) when vLLM and a GPU are present.

Nothing here imports torch, ray or vllm at import time.
"""
