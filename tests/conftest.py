"""Shared fixtures: captured modules are cached per preset for the session
(capture takes seconds); tests clone them before rewriting. Every test starts from the same
seeds (torch, random, numpy), so a test that draws from a global generator is reproducible
on its own and in any order."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

_CACHE: dict[str, object] = {}


@pytest.fixture(autouse=True)
def _seed_everything(request):
    """Seed the global generators per test, from the test's id: its draws do not depend on which tests
    ran before it (a failure reproduces with ``-k``), and differ between tests."""
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    yield


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
