"""Analyses over trained artefacts: LoRA adapter similarity (``adapters``)."""

from ecomlm.analysis.adapters import (
    METRICS,
    AdapterWeights,
    analyze_adapters,
    compare_adapters,
    load_adapter_weights,
)

__all__ = [
    "METRICS",
    "AdapterWeights",
    "analyze_adapters",
    "compare_adapters",
    "load_adapter_weights",
]
