"""The pipeline's working folder: where each stage reads and writes, and the small readers and
writers the stages share (JSONL, JSON, the data manifest, pointer files)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salt.data import DataError, Example


@dataclass(frozen=True)
class Paths:
    """Every stage's inputs and outputs under one root (the DVC project, ``--workdir``)."""

    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def data(self) -> Path:
        return self.work / "data"

    def prepared(self, task: str, name: str) -> Path:
        """``work/data/<task>/<name>.jsonl`` (train-en, dev-en, test-<lang>, unlabeled-<lang>)."""
        return self.data / task / f"{name}.jsonl"

    @property
    def manifest(self) -> Path:
        return self.data / "manifest.json"

    @property
    def model(self) -> Path:
        return self.work / "model"

    @property
    def vocab(self) -> Path:
        return self.work / "vocab" / "vocab.json"

    @property
    def mlm(self) -> Path:
        return self.work / "mlm"

    def codeswitch(self, task: str) -> Path:
        return self.work / "codeswitch" / f"{task}.jsonl"

    def codeswitch_stats(self, task: str) -> Path:
        return self.work / "codeswitch" / f"{task}.stats.json"

    def run(self, task: str, system: str, seed: int) -> Path:
        return self.work / "runs" / f"{task}-{system}-{seed}"

    def rel(self, path: Path) -> str:
        """``path`` relative to the root when inside it, so outputs are machine-independent."""
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path.resolve())

    def pointer(self, name: str, key: str) -> Path:
        """The folder a pointer file (``work/<name>``, JSON) names under ``key``."""
        path = self.work / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run the stage that writes it first")
        target = Path(json.loads(path.read_text())[key])
        return target if target.is_absolute() else self.root / target

    def model_dir(self) -> Path:
        return self.pointer("model/source.json", "path")


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """One JSON object per line, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def dump(path: Path, obj: Any) -> None:
    """Indented JSON, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def read_examples(path: Path) -> list[Example]:
    """A prepared JSONL file; every bad line is an error naming file and line."""
    if not path.is_file():
        raise DataError(f"{path}: missing; run the 'prepare' stage first")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            out.append(Example(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as err:
            raise DataError(f"{path}:{i}: not a prepared example ({err})") from None
    return out


def read_manifest(paths: Paths) -> dict:
    if not paths.manifest.is_file():
        raise DataError(f"{paths.manifest}: missing; run the 'prepare' stage first")
    return json.loads(paths.manifest.read_text())


def unlabeled_texts(paths: Paths, tasks: Sequence[str]) -> dict[str, list[str]]:
    """Sentences of every language's prepared unlabeled text (labels discarded), deduplicated;
    which dev items each language's text comes from is the prepare stage's ``unlabeled_split``."""
    texts: dict[str, list[str]] = {}
    for task in tasks:
        for path in sorted((paths.data / task).glob("unlabeled-*.jsonl")):
            lang = path.stem.split("-", 1)[1]
            seen = texts.setdefault(lang, [])
            for ex in read_examples(path):
                seen.extend((ex.text_a, ex.text_b))
    return {lang: list(dict.fromkeys(v)) for lang, v in texts.items()}
