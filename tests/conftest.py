"""Shared test fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the project root (CI and developers only); skips when a user's clone lacks it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (a user's clone has none): test needs the shared recordings")
    return SHARED


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (tiny models: a second thread only waits, and on a busy machine it is much
    slower); the previous setting is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
