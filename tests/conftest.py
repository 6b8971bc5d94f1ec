"""Shared fixtures: tiny random models (fast) and the real default model (slow)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import _tiny  # noqa: E402


@pytest.fixture(scope="session", params=sorted(_tiny.BUILDERS))
def tiny_model(request):  # type: ignore[no-untyped-def]
    """A saekit Model around a tiny random Llama / GPT-2 / GPT-NeoX."""
    import saekit

    return saekit.load_model(_tiny.BUILDERS[request.param](), tokenizer=_tiny.tokenizer(), device="cpu")


@pytest.fixture(scope="session")
def tiny_llama():  # type: ignore[no-untyped-def]
    import saekit

    return saekit.load_model(_tiny.llama(), tokenizer=_tiny.tokenizer(), device="cpu")


@pytest.fixture(scope="session")
def default_model():  # type: ignore[no-untyped-def]
    """The real SmolLM2-135M-Instruct (converted once into the saekit cache)."""
    import saekit

    return saekit.load_model()
