"""Stage ``codeswitch``: code-switch one task's English training data with the model's own MLM
head (``salt.codeswitch``), resumably, and write the records' quality statistics."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from annotated_types import Ge, Interval

from salt import codeswitch, runtime
from salt.config import ConfigError, Params, build, dataclass_schema
from salt.distributed import process_state
from salt.models import ModelSourceError
from salt.stages import model as model_stage
from salt.stages.common import Precision, quiet_transformers
from salt.vocab import VocabError
from salt.workdir import Paths, dump, read_examples

GROUP = "codeswitch"
READS = ("profile", "tasks", "model", "codeswitch")
ERRORS = (codeswitch.CodeSwitchError, ModelSourceError, VocabError, runtime.PrecisionError)

SETTINGS = dataclass_schema(
    codeswitch.CodeSwitchConfig,
    optional=("languages",),  # default: every target language of the task
    limits={"threshold": Interval(ge=0.0, le=1.0), "synonym_threshold": Interval(ge=0.0, le=1.0),
            "max_ratio": Interval(ge=0.0, le=1.0), "copies": Ge(1), "batch_size": Ge(1),
            "seed": Ge(0), "multi_mask_stride": Ge(1)},
    extra_fields={"precision": (Precision, ...)})


@dataclass(frozen=True)
class Config:
    task: str
    precision: str
    max_length: int
    method: codeswitch.CodeSwitchConfig


def _method(params: Params, profile: str, languages: tuple[str, ...]):
    settings = params.settings(GROUP, SETTINGS, profile)
    stage_values = {}
    if not settings.languages:
        stage_values["languages"] = languages
    return settings, build(codeswitch.CodeSwitchConfig, settings, f"{GROUP}.{profile}",
                           params.path, **stage_values)


def check(params: Params, profile: str) -> codeswitch.CodeSwitchConfig:
    return _method(params, profile, ())[1]


def configure(params: Params, args) -> Config:
    from salt.tasks import get_task

    if args.task not in params.tasks:
        raise ConfigError(f"--task {args.task!r} is not in params 'tasks' {list(params.tasks)}")
    settings, method = _method(params, params.profile,
                               tuple(get_task(args.task).target_languages))
    max_length = params.settings("model", model_stage.Settings).max_length
    return Config(args.task, settings.precision, max_length, method)


def _muse_dir():
    """MUSE dictionaries (an evaluation aid): ``<data folder>/muse`` if there is a local data
    folder holding them, else None (the dictionary figures then read "not run")."""
    from salt.data import DataError, data_dir

    try:
        muse = data_dir() / "muse"
    except DataError:
        return None
    return muse if muse.is_dir() else None


def run(config: Config, paths: Paths) -> None:
    from salt.encoding import encode_pairs
    from salt.models import load_masked_lm, load_tokenizer
    from salt.vocab import LanguageVocabs

    quiet_transformers()
    task = config.task
    mlm_dir = paths.pointer("mlm/mlm.json", "model_dir")
    head_input = codeswitch.input_mode_for(mlm_dir)  # what the MLM head was trained to read
    if config.method.input != head_input:
        raise ConfigError(f"codeswitch.*.input is {config.method.input!r} but the MLM head in "
                          f"{paths.rel(mlm_dir)} reads {head_input!r} input")
    rt = runtime.decide(config.precision)
    method = config.method
    tok = load_tokenizer(mlm_dir)
    encoded = encode_pairs(tok, read_examples(paths.prepared(task, "train-en")),
                           config.max_length)
    vocabs = LanguageVocabs.load(paths.vocab)
    out = paths.codeswitch(task)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = rt.place(load_masked_lm(mlm_dir))
    state = process_state()  # several under accelerate launch: each codes its share of chunks
    try:
        records = codeswitch.code_switch(model, tok, encoded, vocabs, method, out_path=out,
                                         runtime=rt)
    except codeswitch.StalePartialOutput as err:
        # A partial file from other inputs or settings (DVC keeps it for resuming): start afresh.
        print(f"codeswitch {task}: discarding {paths.rel(out)} ({err})")
        stale = [out, codeswitch.part_path(out, state.process_index, state.num_processes)]
        for path in stale:
            path.unlink(missing_ok=True)
            codeswitch.meta_path(path).unlink(missing_ok=True)
        state.wait_for_everyone()
        records = codeswitch.code_switch(model, tok, encoded, vocabs, method, out_path=out,
                                         runtime=rt)
    if not state.is_main_process:
        return  # the main process merged the shares; it alone writes the statistics
    muse = _muse_dir()
    if muse is None:
        print(f"codeswitch {task}: no MUSE dictionaries: dictionary figures not run")
    stats = codeswitch.codeswitch_stats(records, tok, muse, vocabs=vocabs, input_mode=head_input)
    dump(paths.codeswitch_stats(task), {"config": dataclasses.asdict(method),
                                        "runtime": runtime.observed(model, rt),
                                        "processes": state.num_processes, **stats})
    print(f"codeswitch {task}: {len(records)} records -> {paths.rel(out)}")
