"""Task data from a local XTREME-layout folder or the Hugging Face hub.

Local layout: ``{dir}/{task}/{split}-{lang}.tsv``, three tab-separated columns
``text_a, text_b, label``, UTF-8, no header, no quoting. Every malformed row raises ``DataError``
naming the file and line; nothing is dropped and no source falls back to another.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from salt.tasks import TaskSpec, get_task

DATA_DIR_ENV = "SALT_DATA_DIR"
SPLITS = ("train", "dev", "test")
BOM = "\ufeff"


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


def repository_root(start: str | Path | None = None) -> Path:
    """The study's root: the nearest folder at or above ``start`` (default: the working
    directory, which is where ``dvc repro``, nox and CI run) that holds ``dvc.yaml``."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return here


def data_dir_candidates() -> list[Path]:
    """Where the data folder is looked for when ``$SALT_DATA_DIR`` is unset: ``../shared/data``
    beside the repository root (the working directory's, then this package's checkout)."""
    roots = [repository_root(), repository_root(Path(__file__).resolve().parent)]
    out: list[Path] = []
    for root in roots:
        cand = root.parent / "shared" / "data"
        if cand not in out:
            out.append(cand)
    return out


def data_dir(explicit: str | Path | None = None) -> Path:
    """The local data folder, found the same way by the README, ``dvc repro``, nox and CI:
    ``explicit`` (``data.dir``), else ``$SALT_DATA_DIR``, else ``../shared/data`` beside the
    repository root; a ``DataError`` naming what to set and every path tried otherwise."""
    for name, value in (("data.dir", explicit), (DATA_DIR_ENV, os.environ.get(DATA_DIR_ENV))):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise DataError(f"{name}={value!s}: not a directory")
            return path
    tried = data_dir_candidates()
    for cand in tried:
        if cand.is_dir():
            return cand
    raise DataError(
        f"no local data folder: set {DATA_DIR_ENV} to a folder in XTREME layout "
        "({task}/{split}-{lang}.tsv), or put it at ../shared/data beside the repository "
        f"(tried {', '.join(str(c) for c in tried)}), or choose data.source=hub"
    )


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
    if text.startswith(BOM):  # an encoding marker, not text: dropped (the digest keeps the bytes)
        text = text[len(BOM):]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, raw in enumerate(lines, start=1):
        row = raw.rstrip("\r")
        if row.startswith(BOM):  # inside text U+FEFF is a zero-width no-break space: kept
            raise DataError(f"{path}:{i}: byte-order mark (U+FEFF) at the start of a line "
                            "(files concatenated?); only one at the very start of a file is "
                            "accepted")
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
HUB_MIRROR_ENV = "SALT_HUB_MIRROR"
_SHA = re.compile(r"[0-9a-f]{40}")


def resolve_hub_revision(hub_id: str, revision: str | Mapping[str, str | None] | None,
                         key: str = "data.hub_revision") -> str:
    """The pinned dataset commit for ``hub_id``: ``revision`` itself or ``revision[hub_id]``.

    A hub run must name a 40-hex commit sha per dataset (``data.<profile>.hub_revision``):
    a branch or nothing would let two users read different data under one configuration.
    """
    value = revision.get(hub_id) if isinstance(revision, Mapping) else revision
    where = f"{key}.{hub_id}" if isinstance(revision, Mapping) else key
    if not value:
        raise DataError(
            f"{where}: no pinned revision for hub dataset {hub_id}; set it to the dataset's "
            f"commit sha (e.g. `HfApi().dataset_info({hub_id!r}).sha` on a machine with network)")
    if not _SHA.fullmatch(str(value)):
        raise DataError(f"{where}: {value!r} is not a 40-hex commit sha; a branch or tag can "
                        "move, so pin the commit")
    return str(value)


def hub_mirror(explicit: str | Path | None = None) -> Path | None:
    """A local copy of hub datasets (``data.hub_mirror`` or ``$SALT_HUB_MIRROR``), laid out as
    ``{mirror}/{hub_id}/{revision}/`` holding the dataset repository's own files (README.md
    with its configs and the parquet shards), e.g. from ``huggingface-cli download
    --repo-type dataset ID --revision SHA --local-dir {mirror}/ID/SHA``; None when unset."""
    value = explicit if explicit is not None else os.environ.get(HUB_MIRROR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"{HUB_MIRROR_ENV}={value!s}: not a directory")
    return path


def load_hub(task: str, split: str, lang: str,
             revision: str | Mapping[str, str | None] | None = None,
             loader=None, mirror: str | Path | None = None) -> list[Example]:
    """Load one split through ``datasets.load_dataset`` (config = language) at a pinned commit.

    ``revision`` must be a commit sha (or a mapping holding one for this dataset). With a
    mirror (see ``hub_mirror``) the same call reads the repository's files from
    ``{mirror}/{hub_id}/{revision}`` (offline); otherwise from the hub at ``revision``.
    ``loader`` defaults to ``datasets.load_dataset``.
    """
    spec = get_task(task)
    check_languages(spec, [lang])
    revision = resolve_hub_revision(spec.hub_id, revision)
    if loader is None:
        from datasets import load_dataset as loader
    hub_split = _HUB_SPLITS[split]
    where = f"hub:{spec.hub_id}@{revision[:12]}/{lang}/{hub_split}"
    local = hub_mirror(mirror)
    try:
        if local is not None:
            folder = local / spec.hub_id / revision
            if not folder.is_dir():
                raise DataError(f"{where}: the hub mirror has no copy of this revision "
                                f"({spec.hub_id}/{revision} missing under {HUB_MIRROR_ENV})")
            ds = loader(str(folder), lang, split=hub_split)
        else:
            ds = loader(spec.hub_id, lang, split=hub_split, revision=revision)
    except DataError:
        raise
    except Exception as err:  # the hub raises many types; keep the cause, name the request
        raise DataError(f"{where}: could not load ({type(err).__name__}: {err})") from err
    fa, fb = _HUB_FIELDS[task]
    out: list[Example] = []
    for i, row in enumerate(ds, start=1):
        for field in (fa, fb, "label"):
            if field not in row:
                raise DataError(f"{where} row {i}: missing field {field!r}")
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


def load_split(task: str, split: str, lang: str, source: str = "local",
               root: str | Path | None = None,
               revision: str | Mapping[str, str | None] | None = None) -> list[Example]:
    """Load one split from the configured source; never falls back to the other source.
    ``revision``: the hub commit, or ``data.hub_revision``'s mapping of dataset id to commit."""
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


def _source_of(rows: Sequence[Example], lang: str, sources: Mapping[str, str] | None) -> str:
    """The file a language's rows came from: ``sources[lang]``, else read from the uids."""
    if sources and lang in sources:
        return str(sources[lang])
    return f"{rows[0].uid.rsplit(':', 1)[0]}.tsv" if rows else f"no rows for {lang}"


def parallel_subset(per_lang: dict[str, list[Example]], n: int | None, seed: int,
                    pivot: str = "en", sources: Mapping[str, str] | None = None
                    ) -> dict[str, list[Example]]:
    """Pick the same line numbers in every language (stratified on the pivot's labels).

    Row-parallel test sets (XNLI, PAWS-X) share labels by line; choosing identical lines keeps
    per-language accuracies comparable. A language whose lines disagree in count is an error
    naming both files (``sources`` maps language to file; default: ``task/split-lang.tsv``).
    """
    ref = per_lang[pivot]
    for lang, rows in per_lang.items():
        if len(rows) != len(ref):
            raise DataError(f"{lang} has {len(rows)} rows ({_source_of(rows, lang, sources)}) but "
                            f"{pivot} has {len(ref)} ({_source_of(ref, pivot, sources)}); "
                            "test sets must be row-parallel")
    lines = {ex.line for ex in stratified_subset(ref, n, seed)}
    return {lang: [ex for ex in rows if ex.line in lines] for lang, rows in per_lang.items()}


def file_hash(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of one file's bytes, read in blocks (DVC's file hash is ``md5``)."""
    h = hashlib.new(algorithm)
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(paths: Iterable[Path], root: str | Path | None = None) -> str:
    """sha256 (16 hex) over the given files' names and bytes, sorted: the local data's revision.

    With ``root`` each file is named by its path relative to it (``xnli/dev-en.tsv``), so
    same-named files of two tasks differ and the digest is the same on every machine.
    """
    named = []
    for p in paths:
        p = Path(p)
        name = p.resolve().relative_to(Path(root).resolve()).as_posix() if root else p.name
        named.append((name, p))
    h = hashlib.sha256()
    for name, p in sorted(named):
        h.update(name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def local_data_id(paths: Iterable[Path], root: str | Path) -> str:
    """``local:<checksum of the files used>``: the data source recorded in outputs, identical on
    every machine that holds the same files (no folder path)."""
    return f"local:{files_digest(paths, root)}"


def hub_data_id(revisions: Mapping[str, str]) -> str:
    """``hub:<id>@<sha>,...``: the hub datasets and pinned commits a run read."""
    return "hub:" + ",".join(f"{hub_id}@{sha}" for hub_id, sha in sorted(revisions.items()))
