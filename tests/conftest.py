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


def hub_copy(root: Path, hub_id: str, configs: dict[str, dict[str, dict[str, list]]],
             sha: str | None = None) -> str:
    """Write a dataset repository's files as the hub lays them out (README.md whose YAML
    declares one config per language with its parquet shards) under ``root/hub_id/<sha>``;
    without ``sha`` it is content-derived (sha1 of the rows), standing in for the commit id."""
    import hashlib
    import json

    import datasets

    sha = sha or hashlib.sha1(json.dumps(configs, sort_keys=True).encode()).hexdigest()
    folder = root / hub_id / sha
    card = ["---", "configs:"]
    for lang, splits in configs.items():
        card += [f"- config_name: {lang}", "  data_files:"]
        for split, rows in splits.items():
            rel = f"{lang}/{split}-00000-of-00001.parquet"
            (folder / lang).mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(rows).to_parquet(str(folder / rel))
            card += [f"  - split: {split}", f"    path: {rel}"]
    (folder / "README.md").write_text("\n".join([*card, "---", ""]), encoding="utf-8")
    return sha


@pytest.fixture(scope="session")
def hub_mirror(tmp_path_factory, data_dir) -> dict:
    """Small copies of facebook/xnli and google-research-datasets/paws-x in the hub's own file
    layout, built from the first rows of the local data (hub field names, label ids): set
    ``SALT_HUB_MIRROR`` to ``path`` and ``data.<profile>.hub_revision`` to ``revisions`` to run
    the hub code path (``datasets.load_dataset`` at the pinned commit) offline."""
    from salt.data import load_local
    from salt.tasks import PAWSX, XNLI

    root = tmp_path_factory.mktemp("hub-mirror")
    revisions = {}
    for spec, (fa, fb), n in ((XNLI, ("premise", "hypothesis"), 64),
                              (PAWSX, ("sentence1", "sentence2"), 64)):
        configs: dict[str, dict[str, dict[str, list]]] = {}
        for lang in spec.languages:
            splits = {"validation": "dev", "test": "test"} | ({"train": "train"}
                                                               if lang == "en" else {})
            configs[lang] = {}
            for hub_split, ours in splits.items():
                rows = load_local(spec.name, ours, lang, data_dir)[:n]
                configs[lang][hub_split] = {fa: [r.text_a for r in rows],
                                            fb: [r.text_b for r in rows],
                                            "label": [r.label for r in rows]}
        revisions[spec.hub_id] = hub_copy(root, spec.hub_id, configs)
    return {"path": root, "revisions": revisions}
