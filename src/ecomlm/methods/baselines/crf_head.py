"""A linear-chain CRF output layer over a token classifier (``bert`` with ``crf: true``).

The encoder scores every word-piece; a word's scores are its first piece's (the softmax
tagger's rule too). The CRF (pytorch-crf) adds tag-to-tag transition scores, is trained on
the whole tag sequence's likelihood and decodes the best sequence (Viterbi), so a word's
tag depends on its neighbours' — where QueryNER loses most (span boundaries,
docs/results_real.md) rather than on each word's tag alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchcrf import CRF
from transformers.modeling_outputs import TokenClassifierOutput

CRF_FILE = "crf.safetensors"


def word_scores(emissions: torch.Tensor, word_starts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(batch, words, tags) scores of each row's word-start pieces, left-aligned, the
    (batch, words) mask of real words, and the piece index of each word."""
    counts = word_starts.sum(1)
    width = max(int(counts.max()), 1)
    index = torch.zeros(len(word_starts), width, dtype=torch.long, device=emissions.device)
    for row, starts in enumerate(word_starts):
        positions = starts.nonzero().squeeze(-1)
        index[row, : len(positions)] = positions
    mask = torch.arange(width, device=emissions.device)[None] < counts[:, None]
    mask[:, 0] = True  # the CRF needs a first step in every row (an empty one decodes "O")
    words = emissions.gather(1, index[..., None].expand(-1, -1, emissions.shape[-1]))
    return words, mask, index


class CrfTagger(torch.nn.Module):
    """``encoder``: a ``*ForTokenClassification`` model whose logits are the emissions."""

    def __init__(self, encoder: Any, num_tags: int, crf_lr_scale: float = 100.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.crf = CRF(num_tags, batch_first=True)
        self.crf_lr_scale = crf_lr_scale

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.encoder.get_input_embeddings()

    def extra_param_groups(self, lr: float) -> list[dict[str, Any]]:
        # transitions start near 0 and would barely move at an encoder's 5e-5
        return [{"params": list(self.crf.parameters()), "lr": lr * self.crf_lr_scale,
                 "weight_decay": 0.0}]  # fmt: skip

    def forward(
        self, word_starts: torch.Tensor, labels: torch.Tensor | None = None, **inputs: Any
    ) -> TokenClassifierOutput:
        emissions = self.encoder(**inputs).logits
        loss = None
        if labels is not None:
            words, mask, index = word_scores(emissions, word_starts)
            tags = labels.gather(1, index).clamp(min=0)
            loss = -self.crf(words, tags, mask=mask, reduction="mean")
        return TokenClassifierOutput(loss=loss, logits=emissions)

    @torch.inference_mode()
    def decode(self, word_starts: torch.Tensor, **inputs: Any) -> list[list[int]]:
        """The best tag sequence of each row's words (Viterbi)."""
        words, mask, _ = word_scores(self.encoder(**inputs).logits, word_starts)
        return self.crf.decode(words, mask=mask)

    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        self.encoder.save_pretrained(path)
        save_file({k: v.contiguous() for k, v in self.crf.state_dict().items()},
                  str(Path(path) / CRF_FILE))  # fmt: skip

    @classmethod
    def from_pretrained(cls, path: str | Path) -> CrfTagger:
        from safetensors.torch import load_file
        from transformers import AutoModelForTokenClassification

        encoder = AutoModelForTokenClassification.from_pretrained(path)
        model = cls(encoder, encoder.config.num_labels)
        model.crf.load_state_dict(load_file(str(Path(path) / CRF_FILE)))
        return model
