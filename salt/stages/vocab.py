"""Stage ``vocab``: each language's sub-word set from its unlabeled text (``salt.vocab``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from annotated_types import Ge

from salt.config import Params, build, dataclass_schema
from salt.models import ModelSourceError
from salt.stages.common import quiet_transformers
from salt.vocab import VocabError, VocabRule
from salt.workdir import Paths, unlabeled_texts

GROUP = "vocab"
READS = ("profile", "tasks", "vocab")
ERRORS = (ModelSourceError, VocabError)  # reported without a traceback (salt.cli)

# ``vocab.<profile>``: every field of the rule, none left to a default
SETTINGS = dataclass_schema(VocabRule, limits={"min_count": Ge(1), "source_top_k": Ge(0),
                                               "source_max_count": Ge(1)})


@dataclass(frozen=True)
class Config:
    tasks: tuple[str, ...]
    rule: VocabRule


def check(params: Params, profile: str) -> VocabRule:
    where = f"{GROUP}.{profile}"
    return build(VocabRule, params.settings(GROUP, SETTINGS, profile), where, params.path)


def configure(params: Params, args=None) -> Config:
    return Config(params.tasks, check(params, params.profile))


def run(config: Config, paths: Paths) -> None:
    from salt.models import load_tokenizer
    from salt.vocab import build_vocabularies

    quiet_transformers()
    tok = load_tokenizer(paths.model_dir())
    vocabs = build_vocabularies(tok, unlabeled_texts(paths, config.tasks),
                                **dataclasses.asdict(config.rule))
    paths.vocab.parent.mkdir(parents=True, exist_ok=True)
    vocabs.save(paths.vocab)
    print("vocab: " + ", ".join(f"{lang} {len(vocabs.ids(lang))}" for lang in vocabs.languages))
