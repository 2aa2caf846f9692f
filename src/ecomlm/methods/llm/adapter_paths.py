"""Where a LoRA adapter lives: the one lookup from a run, model or adapter folder.

A leaf module (pathlib only), so the server, the vLLM backend and the analysis can
find adapters without importing torch.
"""

from __future__ import annotations

from pathlib import Path

ADAPTER_DIR = "adapter"  # the PEFT folder inside a saved method folder (model/)
ADAPTER_CONFIG = "adapter_config.json"


class NoAdapterError(FileNotFoundError, ValueError):
    """An existing folder that holds no LoRA adapter (callers catch either base)."""


def locate_adapter(path: str | Path) -> tuple[Path, Path]:
    """``(adapter folder, saved-method folder)`` for ``path``.

    ``path`` is a run folder (``<run>/model/adapter/``), a saved method folder
    (``<model>/adapter/``) or a bare PEFT folder (``adapter_config.json``; its
    method folder is then its parent).
    """
    given = Path(path)
    if not given.exists():
        raise FileNotFoundError(f"adapter {str(path)!r} not found")
    for folder, method_dir in (
        (given / "model" / ADAPTER_DIR, given / "model"),  # run folder
        (given / ADAPTER_DIR, given),  # saved method folder (model/)
        (given, given.parent),  # bare PEFT folder (maybe inside model/)
    ):
        if (folder / ADAPTER_CONFIG).is_file():
            return folder, method_dir
    raise NoAdapterError(
        f"{str(path)!r} holds no LoRA adapter: expected a run folder (model/adapter/), a saved "
        f"method folder (adapter/) or a PEFT adapter folder ({ADAPTER_CONFIG})"
    )


def adapter_dir(path: str | Path) -> Path:
    """The PEFT adapter folder inside a run folder, a saved ``model/`` folder, or itself."""
    return locate_adapter(path)[0]
