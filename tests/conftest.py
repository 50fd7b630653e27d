"""Shared fixtures: captured modules are cached per preset for the session
(capture takes seconds); tests clone them before rewriting."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

_CACHE: dict[str, object] = {}


def imported(preset: str):
    from kiln.frontend import import_model

    if preset not in _CACHE:
        _CACHE[preset] = import_model(preset)
    return _CACHE[preset]


@pytest.fixture
def import_preset():
    return imported


_ART: dict[str, object] = {}


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory):
    """A compiled and saved llama-tiny artifact (default pipeline)."""
    import kiln

    if "llama-tiny" not in _ART:
        path = tmp_path_factory.mktemp("art") / "llama-tiny.kiln"
        kiln.compile("llama-tiny").save(path)
        _ART["llama-tiny"] = path
    return _ART["llama-tiny"]
