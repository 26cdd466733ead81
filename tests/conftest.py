"""Shared fixtures: every cache in a temp dir, offline flags on, the local data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from salt.data import DataError
from salt.data import data_dir as find_data_dir

DATA_ENV = "SALT_DATA_DIR"

# One lookup for the data folder everywhere (salt.data.data_dir: $SALT_DATA_DIR, else
# ../shared/data beside the repository); exported so subprocesses and every test module see it.
try:
    os.environ.setdefault(DATA_ENV, str(find_data_dir()))
except DataError as _err:
    _DATA_ERROR: str | None = str(_err)
else:
    _DATA_ERROR = None


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Point every cache at a temp dir and force offline mode, so no test reads or writes
    a user's cache or reaches the network."""
    cache = tmp_path_factory.getbasetemp() / "caches"
    for var, sub in (("HF_HOME", "hf"), ("HF_DATASETS_CACHE", "hf/datasets"),
                     ("HF_HUB_CACHE", "hf/hub"), ("XDG_CACHE_HOME", "xdg"),
                     ("SALT_CACHE_DIR", "salt"), ("MPLCONFIGDIR", "mpl")):
        monkeypatch.setenv(var, str(cache / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Accelerate keeps mixed precision in a process-wide singleton; each test starts clean so
    tests that train in bf16 and in fp32 can share one process."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real local data folder; a test that needs it fails (not skips) without it."""
    if _DATA_ERROR is not None:
        pytest.fail(_DATA_ERROR)
    return find_data_dir()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, data_dir) -> Path:
    """A tiny random BERT whose WordPiece vocabulary is learned from real multilingual text."""
    from salt.data import load_local
    from salt.models import build_tiny

    texts = []
    for lang in ("en", "fr", "de", "es"):
        for ex in load_local("xnli", "dev", lang, data_dir)[:150]:
            texts.extend((ex.text_a, ex.text_b))
    return build_tiny(tmp_path_factory.mktemp("tiny"), texts, vocab_size=1500, hidden=32,
                      layers=2, heads=2)
