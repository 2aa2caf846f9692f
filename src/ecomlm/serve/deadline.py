"""Stop generation at a request's deadline (a transformers ``StoppingCriteria``).

Imported lazily by the chat path: it pulls in torch and transformers.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import StoppingCriteria


class DeadlineCriteria(StoppingCriteria):
    """Ends generation for every row once ``time.monotonic()`` passes ``deadline``
    (None: never); ``reached`` records that it did, so the caller can answer 504."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.reached = False

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.reached = True
        rows = input_ids.shape[0]
        return torch.full((rows,), self.reached, dtype=torch.bool, device=input_ids.device)
