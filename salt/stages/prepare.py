"""Stage ``prepare``: select the profile's rows (seeded, label-stratified) and write them as
JSONL under ``work/data`` with a manifest of sizes, seed and the data's identity."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Ge
from pydantic import BaseModel

from salt import data
from salt.config import STRICT, ConfigError, Params
from salt.workdir import Paths, dump, write_jsonl

GROUP = "data"
READS = ("profile", "tasks", "data")
ERRORS: tuple[type[Exception], ...] = ()  # beyond those salt.cli always reports

Count = Annotated[int, Ge(1)]


class Settings(BaseModel):
    """``data.<profile>``: rows per split (null = all) and where they come from."""

    model_config = STRICT
    source: Literal["local", "hub"]
    train: Count | None
    dev: Count | None
    test: Count | None
    unlabeled: Count | None  # sentences pairs of dev text per language for vocab / MLM head
    subset_seed: Annotated[int, Ge(0)]
    # disjoint_halves: English unlabeled text from one half of the dev items, every other
    # language from the other half (no translation of the English text it is compared with);
    # shared: every language from the same items (sentence-parallel, implicit parallel data)
    unlabeled_split: Literal["disjoint_halves", "shared"]
    # hub only: the pinned commit sha of each hub dataset (a run with one unpinned stops)
    hub_revision: dict[str, str | None] | None = None
    languages: dict[str, list[str]] | None = None  # per task; null = every task language


@dataclass(frozen=True)
class Config:
    profile: str
    tasks: tuple[str, ...]
    settings: Settings


def check(params: Params, profile: str) -> Settings:
    settings = params.settings(GROUP, Settings, profile)
    if settings.source == "local" and settings.hub_revision is not None:
        raise ConfigError(f"{params.path}: {GROUP}.{profile}.hub_revision: set for source "
                          f"'local' (value {settings.hub_revision!r}); allowed only with 'hub'")
    for task in (settings.languages or {}):
        if task not in params.tasks:
            raise ConfigError(f"{params.path}: {GROUP}.{profile}.languages.{task}: task not in "
                              f"'tasks' {list(params.tasks)}")
    return settings


def configure(params: Params, args=None) -> Config:
    return Config(params.profile, params.tasks, check(params, params.profile))


def unlabeled_items(n: int, split: str, seed: int) -> tuple[list[int], list[int]]:
    """Item indices (English, other languages) of the unlabeled text of ``n`` dev items."""
    if split == "shared":
        return list(range(n)), list(range(n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    half = set(order[: n // 2])
    return ([i for i in range(n) if i in half], [i for i in range(n) if i not in half])


def run(config: Config, paths: Paths) -> None:
    cfg = config.settings
    root_dir = data.data_dir() if cfg.source == "local" else None
    revisions: dict[str, str] = {}
    used: list[Path] = []
    manifest = {"profile": config.profile, "source": cfg.source, "sizes": {},
                "subset_seed": cfg.subset_seed, "unlabeled_split": cfg.unlabeled_split}
    for task in config.tasks:
        spec = data.get_task(task)
        langs = (cfg.languages or {}).get(task) or list(spec.languages)
        data.check_languages(spec, langs, key=f"data.{config.profile}.languages.{task}")
        if cfg.source == "hub":
            revisions[spec.hub_id] = data.resolve_hub_revision(
                spec.hub_id, cfg.hub_revision, key=f"data.{config.profile}.hub_revision")

        def load(split: str, lang: str, _task: str = task, _hub: str = spec.hub_id):
            if cfg.source == "local":
                used.append(data.split_path(root_dir, _task, split, lang))
            return data.load_split(_task, split, lang, cfg.source, root_dir, revisions.get(_hub))

        train = data.stratified_subset(load("train", "en"), cfg.train, cfg.subset_seed)
        dev_en = data.stratified_subset(load("dev", "en"), cfg.dev, cfg.subset_seed)
        test = data.parallel_subset({lang: load("test", lang) for lang in langs}, cfg.test,
                                    cfg.subset_seed, pivot=spec.source_language)
        write_jsonl(paths.prepared(task, "train-en"), (vars(e) for e in train))
        write_jsonl(paths.prepared(task, "dev-en"), (vars(e) for e in dev_en))
        unlabeled_rows = {}
        for lang in langs:
            write_jsonl(paths.prepared(task, f"test-{lang}"), (vars(e) for e in test[lang]))
            dev = load("dev", lang)
            source_items, other_items = unlabeled_items(len(dev), cfg.unlabeled_split,
                                                        cfg.subset_seed)
            picked = source_items if lang == spec.source_language else other_items
            rows = [dev[i] for i in picked][: cfg.unlabeled]
            unlabeled_rows[lang] = len(rows)
            write_jsonl(paths.prepared(task, f"unlabeled-{lang}"), (vars(e) for e in rows))
        manifest["sizes"][task] = {"train": len(train), "dev_en": len(dev_en),
                                   "test_per_language": len(test[spec.source_language]),
                                   "languages": langs,
                                   "unlabeled_per_language": unlabeled_rows}
        print(f"prepare {task}: train {len(train)}, dev-en {len(dev_en)}, "
              f"test {len(test[spec.source_language])} x {len(langs)} languages")
    if cfg.source == "local":
        manifest["revision"] = data.files_digest(set(used), root_dir)
        manifest["data_source"] = data.local_data_id(set(used), root_dir)
    else:
        manifest["revision"] = manifest["data_source"] = data.hub_data_id(revisions)
    dump(paths.manifest, manifest)
