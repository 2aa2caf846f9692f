"""Mask secrets in any text that may reach a run record, a log or a report.

API keys are read from the environment (or a key file) at run time and never saved;
an endpoint can still echo one back in an error message. Every error text passes
``redact`` before it is written: the keys registered with ``register_secret`` and the
common token shapes (``sk-…``, ``Bearer …``, ``api_key=…``) become ``[REDACTED]``.
"""

from __future__ import annotations

import re

MASK = "[REDACTED]"
_SECRETS: set[str] = set()
_SHAPES = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?i)\b(api[_-]?key|token|authorization)(\s*[=:]\s*)['\"]?[A-Za-z0-9._~+/=\-]{8,}"),
)


def register_secret(value: str | None) -> None:
    """Remember a secret in use (e.g. the configured API key) so it is always masked."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str | None) -> str | None:
    """``text`` with every registered secret and token-shaped string masked."""
    if not text:
        return text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for shape in _SHAPES:
        text = shape.sub(_mask_match, text)
    return text


def _mask_match(match: re.Match) -> str:
    if match.re is _SHAPES[2]:  # keep the field name: "api_key=[REDACTED]"
        return f"{match.group(1)}{match.group(2)}{MASK}"
    if match.group(0).lower().startswith("bearer"):
        return f"Bearer {MASK}"
    return MASK
