"""XTREME-layout prediction files: ``[TASK/]{split}-{lang}.tsv`` (or ``.txt``), one predicted
label per line, scored here against the gold labels of the data layer (``salt.data.load_split``
under ``$SALT_DATA_DIR``), so the metrics file carries per-item predictions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from salt.data import DataError, data_dir, files_digest, load_split, split_path
from salt.tasks import TASKS, TaskSpec

from .common import Draft, ImportOptions, LanguageNumbers, SourceError, check_system, get_spec

NAME_RE = re.compile(r"^(test|dev)-([a-z]{2})\.(tsv|txt)$")


def parse_label(token: str, spec: TaskSpec, where: str) -> int:
    """A label name of the task or its index (``0..num_labels-1``)."""
    if token in spec.labels:
        return spec.labels.index(token)
    if token.isdigit() and int(token) < len(spec.labels):
        return int(token)
    raise SourceError(f"{where}: label {token!r} is neither a {spec.name} label "
                      f"{list(spec.labels)} nor an index 0..{len(spec.labels) - 1}")


def score(spec: TaskSpec, split: str, lang: str, predicted: list[int], where: str,
          root: str | None) -> tuple[dict[str, list], LanguageNumbers]:
    """Pair predictions with the gold items of one split/language, line by line."""
    try:
        gold = load_split(spec.name, split, lang, root=root)
    except DataError as err:
        raise SourceError(f"{where}: cannot read the gold labels ({err})") from None
    if len(gold) != len(predicted):
        raise SourceError(f"{where}: {len(predicted)} predictions but the {spec.name} {split}-{lang} "
                          f"gold set has {len(gold)} items")
    labels = [ex.label for ex in gold]
    correct = sum(int(y == p) for y, p in zip(labels, predicted, strict=True))
    preds = {"uids": [ex.uid for ex in gold], "labels": labels, "predicted": predicted}
    return preds, LanguageNumbers(correct / len(gold), len(gold), "gold items scored")


def gold_revision(task: str, split: str, langs: list[str], root: str | None) -> str:
    """The data id of the gold files used (sha256 of their bytes)."""
    base = data_dir(root)
    return files_digest([split_path(base, task, split, lang) for lang in langs])


def read_labels(path: Path, spec: TaskSpec, header: str | None = None) -> list[int]:
    """One label per line; with ``header`` the first line must be it and lines are
    ``index<TAB>label`` with consecutive indices (Hugging Face ``predict_results*.txt``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise SourceError(f"{path}: not valid UTF-8 ({err})") from None
    out = []
    start = 1
    if header is not None:
        if not lines or lines[0].split("\t") != header.split("\t"):
            raise SourceError(f"{path}:1: expected the header {header!r}")
        lines, start = lines[1:], 2
    for i, raw in enumerate(lines, start=start):
        token = raw.strip()
        if header is not None:
            cols = token.split("\t")
            if len(cols) != 2 or cols[0] != str(i - start):
                raise SourceError(f"{path}:{i}: expected '{i - start}<TAB>label'")
            token = cols[1]
        if not token:
            raise SourceError(f"{path}:{i}: empty line (every item needs a prediction)")
        out.append(parse_label(token, spec, f"{path}:{i}"))
    if not out:
        raise SourceError(f"{path}: no predictions")
    return out


def read(src: Path, opts: ImportOptions) -> list[tuple[Draft, list[Path]]]:
    if not src.is_dir():
        raise SourceError(f"{src}: expected a folder of XTREME-layout prediction files "
                          "([TASK/]{split}-{lang}.tsv)")
    groups: dict[tuple[str, str], dict[str, Path]] = {}
    folders = [d for d in sorted(src.iterdir()) if d.is_dir() and d.name in TASKS]
    if folders and opts.task is not None:
        folders = [d for d in folders if d.name == opts.task]
    pairs = [(d.name, d) for d in folders] or [(opts.task, src)]
    for task, folder in pairs:
        get_spec(task, str(folder))
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            m = NAME_RE.match(path.name)
            if m is None:
                raise SourceError(f"{path}: not an XTREME prediction file name "
                                  "({split}-{lang}.tsv with split test or dev)")
            split, lang = m.group(1), m.group(2)
            groups.setdefault((task, split), {})[lang] = path
    if not groups:
        raise SourceError(f"{src}: no prediction files found")
    system = check_system(opts.system, str(src))
    out = []
    for (task, split), files in sorted(groups.items()):
        spec = get_spec(task, str(src))
        if opts.split is not None and opts.split != split:
            raise SourceError(f"{src}: --split {opts.split} but the files are {split}-* files")
        numbers: dict[str, LanguageNumbers] = {}
        preds: dict[str, Any] = {}
        for lang in [x for x in spec.languages if x in files] + \
                [x for x in files if x not in spec.languages]:
            if lang not in spec.languages:
                raise SourceError(f"{files[lang]}: {lang!r} is not a {task} language")
            preds[lang], numbers[lang] = score(spec, split, lang, read_labels(files[lang], spec),
                                               str(files[lang]), opts.data_dir)
        rev = gold_revision(task, split, list(numbers), opts.data_dir)
        draft = Draft(task, system, opts.seed, numbers, preds, split=split,
                      split_from="file names", data_source=f"local:{rev}", data_revision=rev,
                      sizes={split: len(next(iter(preds.values()))["uids"])})
        draft.notes.append("scored against the local gold labels ($SALT_DATA_DIR); model, "
                           "training and versions are not stated by prediction files")
        out.append((draft, [files[lang] for lang in numbers]))
    return out
