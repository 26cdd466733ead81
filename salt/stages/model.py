"""Stage ``model``: materialise the model source as a local ``save_pretrained`` folder and
point ``work/model/source.json`` at it. Its ``Settings`` (``model.<profile>``) are also read by
the stages that tokenise (``max_length``) or record the source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge
from pydantic import BaseModel, Field

from salt.config import STRICT, Params
from salt.models import ModelSourceError
from salt.workdir import Paths, dump, read_examples, unlabeled_texts

GROUP = "model"
READS = ("profile", "tasks", "model")
ERRORS = (ModelSourceError,)  # reported without a traceback (salt.cli)


class Tiny(BaseModel):
    """Shape of the ``tiny`` random BERT (``salt.models.build_tiny``)."""

    model_config = STRICT
    vocab_size: Annotated[int, Ge(16)]
    hidden: Annotated[int, Ge(1)]
    layers: Annotated[int, Ge(1)]
    heads: Annotated[int, Ge(1)]
    seed: Annotated[int, Ge(0)]


class Settings(BaseModel):
    """``model.<profile>``: ``source`` is ``tiny``, ``e5-small`` or ``hf:<name-or-path>``."""

    model_config = STRICT
    source: Annotated[str, Field(pattern=r"^(tiny|e5-small|hf:.+)$")]
    max_length: Annotated[int, Ge(8)]  # tokens per sentence pair, specials included
    # classifier pooling: "cls" (first token + the model's pooler, as in BERT) or "mean" (masked
    # mean over tokens, for encoders trained for mean pooling without a pooler, e.g. e5)
    pooling: Literal["cls", "mean"]
    tiny: Tiny | None = None  # required for source 'tiny'


@dataclass(frozen=True)
class Config:
    tasks: tuple[str, ...]
    settings: Settings


def check(params: Params, profile: str) -> Settings:
    from salt.config import ConfigError

    settings = params.settings(GROUP, Settings, profile)
    if (settings.source == "tiny") != (settings.tiny is not None):
        raise ConfigError(f"{params.path}: {GROUP}.{profile}.tiny: required with source 'tiny' "
                          f"and only then (source {settings.source!r})")
    return settings


def configure(params: Params, args=None) -> Config:
    return Config(params.tasks, check(params, params.profile))


def run(config: Config, paths: Paths) -> None:
    from salt.models import resolve

    spec = config.settings.source
    texts = None
    if spec == "tiny":
        texts = [t for v in unlabeled_texts(paths, config.tasks).values() for t in v]
        for task in config.tasks:
            for ex in read_examples(paths.prepared(task, "train-en")):
                texts.extend((ex.text_a, ex.text_b))
    tiny = config.settings.tiny.model_dump() if config.settings.tiny else None
    path = resolve(spec, texts=texts, out_dir=paths.model / "base", tiny_kwargs=tiny)
    dump(paths.model / "source.json", {"spec": spec, "path": paths.rel(path)})
    print(f"model {spec}: {paths.rel(path)}")
