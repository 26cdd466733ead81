"""Task data from a local XTREME-layout folder or the Hugging Face hub.

Local layout: ``{dir}/{task}/{split}-{lang}.tsv``, three tab-separated columns
``text_a, text_b, label``, UTF-8, no header, no quoting. Every malformed row raises ``DataError``
naming the file and line; nothing is dropped and no source falls back to another.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from salt.tasks import TaskSpec, get_task

DATA_DIR_ENV = "SALT_DATA_DIR"
SPLITS = ("train", "dev", "test")


class DataError(ValueError):
    """Bad or missing task data; the message names the file, line and problem."""


@dataclass(frozen=True)
class Example:
    """One labelled sentence pair. ``uid`` is ``{task}/{split}-{lang}:{line}`` (1-based line);
    translations in XNLI/PAWS-X share line numbers, so uids pair items across languages."""

    uid: str
    text_a: str
    text_b: str
    label: int

    @property
    def line(self) -> int:
        return int(self.uid.rsplit(":", 1)[1])


def data_dir(explicit: str | Path | None = None) -> Path:
    """The local data folder: ``explicit`` or ``$SALT_DATA_DIR``; a clear error when neither."""
    value = explicit if explicit is not None else os.environ.get(DATA_DIR_ENV)
    if not value:
        raise DataError(
            f"no local data folder: set {DATA_DIR_ENV} to a folder in XTREME layout "
            "({task}/{split}-{lang}.tsv) or choose data.source=hub"
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"{DATA_DIR_ENV}={value!s}: not a directory")
    return path


def split_path(root: Path, task: str, split: str, lang: str) -> Path:
    return root / task / f"{split}-{lang}.tsv"


def read_tsv(path: Path, spec: TaskSpec, split: str, lang: str) -> list[Example]:
    """Parse one XTREME-layout file strictly (plain tab split, no csv quoting)."""
    if not path.is_file():
        raise DataError(f"{path}: missing file for task {spec.name}, split {split}, language {lang}")
    examples: list[Example] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 ({err})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, raw in enumerate(lines, start=1):
        row = raw.rstrip("\r")
        cols = row.split("\t")
        if len(cols) != 3:
            raise DataError(f"{path}:{i}: expected 3 tab-separated columns, found {len(cols)}")
        text_a, text_b, label = cols
        if not text_a.strip() or not text_b.strip():
            which = "text_a" if not text_a.strip() else "text_b"
            raise DataError(f"{path}:{i}: empty {which}")
        if label not in spec.labels:
            raise DataError(f"{path}:{i}: unknown label {label!r}; allowed: {list(spec.labels)}")
        examples.append(
            Example(f"{spec.name}/{split}-{lang}:{i}", text_a, text_b, spec.labels.index(label))
        )
    if not examples:
        raise DataError(f"{path}: no rows")
    return examples


def check_languages(spec: TaskSpec, languages: Sequence[str], key: str = "languages") -> None:
    """Reject unknown or duplicated languages, naming the parameter key."""
    seen: set[str] = set()
    for lang in languages:
        if lang in seen:
            raise DataError(f"{key}: duplicate language {lang!r} for task {spec.name}")
        if lang not in spec.languages:
            raise DataError(f"{key}: unknown language {lang!r} for task {spec.name}; "
                            f"known: {list(spec.languages)}")
        seen.add(lang)


def load_local(task: str, split: str, lang: str, root: str | Path | None = None) -> list[Example]:
    """Load one split of one language from the local folder."""
    spec = get_task(task)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {SPLITS}")
    check_languages(spec, [lang])
    return read_tsv(split_path(data_dir(root), task, split, lang), spec, split, lang)


# Hub field names per task and the hub's split names for ours.
_HUB_FIELDS = {"xnli": ("premise", "hypothesis"), "pawsx": ("sentence1", "sentence2")}
_HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def load_hub(task: str, split: str, lang: str, revision: str | None = None,
             loader=None) -> list[Example]:
    """Load one split through ``datasets.load_dataset`` (config = language).

    ``revision`` pins the dataset commit. ``loader`` defaults to ``datasets.load_dataset``;
    tests inject one that reads local files in the hub's format. Honors HF_DATASETS_OFFLINE.
    """
    spec = get_task(task)
    check_languages(spec, [lang])
    if loader is None:
        from datasets import load_dataset as loader
    try:
        ds = loader(spec.hub_id, lang, split=_HUB_SPLITS[split], revision=revision)
    except Exception as err:  # the hub raises many types; keep the cause, name the request
        raise DataError(
            f"hub:{spec.hub_id} config {lang} split {_HUB_SPLITS[split]} revision {revision}: "
            f"could not load ({type(err).__name__}: {err})"
        ) from err
    fa, fb = _HUB_FIELDS[task]
    where = f"hub:{spec.hub_id}/{lang}/{_HUB_SPLITS[split]}"
    out: list[Example] = []
    for i, row in enumerate(ds, start=1):
        for key in (fa, fb, "label"):
            if key not in row:
                raise DataError(f"{where} row {i}: missing field {key!r}")
        label = row["label"]
        if isinstance(label, str):
            if label not in spec.labels:
                raise DataError(f"{where} row {i}: unknown label {label!r}")
            label = spec.labels.index(label)
        if not isinstance(label, int) or not 0 <= label < len(spec.labels):
            raise DataError(f"{where} row {i}: label {label!r} outside 0..{len(spec.labels) - 1}")
        if not str(row[fa]).strip() or not str(row[fb]).strip():
            raise DataError(f"{where} row {i}: empty text")
        out.append(Example(f"{task}/{split}-{lang}:{i}", str(row[fa]), str(row[fb]), label))
    if not out:
        raise DataError(f"{where}: no rows")
    return out


def resolve_hub_revision(hub_id: str, revision: str | None, api=None) -> str:
    """The commit sha to load: ``revision`` as given, or the hub head resolved now (recorded in
    the run's provenance so the run is pinned after the fact)."""
    if revision:
        return revision
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        return api.dataset_info(hub_id).sha
    except Exception as err:
        raise DataError(f"hub:{hub_id}: cannot resolve the current revision "
                        f"({type(err).__name__}: {err}); set data.hub_revision") from err


def load_split(task: str, split: str, lang: str, source: str = "local",
               root: str | Path | None = None, revision: str | None = None) -> list[Example]:
    """Load one split from the configured source; never falls back to the other source."""
    if source == "local":
        return load_local(task, split, lang, root)
    if source == "hub":
        return load_hub(task, split, lang, revision)
    raise DataError(f"data.source: unknown source {source!r}; use 'local' or 'hub'")


def stratified_subset(examples: Sequence[Example], n: int | None, seed: int) -> list[Example]:
    """Deterministic label-stratified sample of ``n`` rows (all rows when ``n`` is None).

    Each label keeps its share (largest-remainder rounding); rows come back in file order, so
    the same ``seed`` selects the same lines in every language of a row-parallel task.
    """
    if n is None or n >= len(examples):
        return list(examples)
    if n <= 0:
        raise DataError(f"subset size must be positive, got {n}")
    by_label: dict[int, list[int]] = defaultdict(list)
    for idx, ex in enumerate(examples):
        by_label[ex.label].append(idx)
    labels = sorted(by_label)
    quotas = {lab: n * len(by_label[lab]) / len(examples) for lab in labels}
    take = {lab: int(quotas[lab]) for lab in labels}
    rest = n - sum(take.values())
    for lab in sorted(labels, key=lambda lab: (-(quotas[lab] - take[lab]), lab))[:rest]:
        take[lab] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for lab in labels:
        chosen.extend(rng.sample(by_label[lab], take[lab]))
    return [examples[i] for i in sorted(chosen)]


def parallel_subset(per_lang: dict[str, list[Example]], n: int | None, seed: int,
                    pivot: str = "en") -> dict[str, list[Example]]:
    """Pick the same line numbers in every language (stratified on the pivot's labels).

    Row-parallel test sets (XNLI, PAWS-X) share labels by line; choosing identical lines keeps
    per-language accuracies comparable. A language whose lines disagree in count is an error.
    """
    ref = per_lang[pivot]
    for lang, rows in per_lang.items():
        if len(rows) != len(ref):
            raise DataError(f"language {lang} has {len(rows)} rows but {pivot} has {len(ref)}; "
                            "test sets must be row-parallel")
    lines = {ex.line for ex in stratified_subset(ref, n, seed)}
    return {lang: [ex for ex in rows if ex.line in lines] for lang, rows in per_lang.items()}


def files_digest(paths: Iterable[Path]) -> str:
    """sha256 over the given files' bytes (sorted by path): the local data's revision."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]
