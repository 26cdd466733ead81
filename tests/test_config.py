"""params.yaml refuses bad input before any work: an unknown, missing or wrongly typed key, or a
value out of range, in any group and any profile, is a ConfigError naming the file,
``group.profile.key``, the value and what is allowed."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from salt import cli
from salt.config import ConfigError, check_all, load_params, read_yaml
from salt.stages import prepare, train

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def _write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _error(tmp_path: Path, params: dict, profile: str | None = None) -> str:
    path = _write(tmp_path, params)
    with pytest.raises(ConfigError) as err:
        check_all(load_params(path, profile))
    return str(err.value)


def _edit(group: str, profile: str, **changes) -> dict:
    params = copy.deepcopy(RAW)
    entry = params[group][profile]
    for key, value in changes.items():
        if value is DELETE:
            del entry[key]
        else:
            entry[key] = value
    return params


DELETE = object()


def test_committed_params_are_valid():
    check_all(load_params(ROOT / "params.yaml"))


# one unknown key, one missing key and one wrongly typed key for every group
BAD = [
    # group, profile, change, what the message must name
    ("data", "smoke", {"trian": 200}, ["data.smoke.trian", "unknown key", "200", "'train'"]),
    ("data", "proxy", {"subset_seed": DELETE}, ["data.proxy.subset_seed", "missing key"]),
    ("data", "paper", {"unlabeled_split": "halves"},
     ["data.paper.unlabeled_split", "'halves'", "disjoint_halves"]),
    ("model", "smoke", {"max_lenght": 64}, ["model.smoke.max_lenght", "unknown key",
                                            "'max_length'"]),
    ("model", "proxy", {"max_length": DELETE}, ["model.proxy.max_length", "missing key"]),
    ("model", "paper", {"max_length": "128"}, ["model.paper.max_length", "'128'", "int"]),
    ("vocab", "smoke", {"min_cnt": 1}, ["vocab.smoke.min_cnt", "unknown key", "'min_count'"]),
    ("vocab", "proxy", {"source_share_ratio": DELETE},
     ["vocab.proxy.source_share_ratio", "missing key"]),
    ("vocab", "paper", {"word_start_only": "yes"}, ["vocab.paper.word_start_only", "'yes'",
                                                    "bool"]),
    ("mlm", "smoke", {"eval_sentence": 40}, ["mlm.smoke.eval_sentence", "unknown key"]),
    ("mlm", "proxy", {"head_layer": DELETE}, ["mlm.proxy.head_layer", "missing key"]),
    ("mlm", "proxy", {"encode_sentences": "70000"}, ["mlm.proxy.encode_sentences", "'70000'", "int"]),
    ("mlm", "paper", {"train": "false"}, ["mlm.paper.train", "'false'", "true"]),
    ("codeswitch", "smoke", {"synonyms": "false"}, ["codeswitch.smoke.synonyms", "'false'",
                                                    "bool"]),
    ("codeswitch", "smoke", {"threshold": "0.05"}, ["codeswitch.smoke.threshold", "'0.05'",
                                                    "float"]),
    ("codeswitch", "proxy", {"max_ratio": "0.3"}, ["codeswitch.proxy.max_ratio", "'0.3'",
                                                   "float"]),
    ("codeswitch", "paper", {"candidate": DELETE}, ["codeswitch.paper.candidate",
                                                    "missing key"]),
    ("codeswitch", "paper", {"treshold": 0.5}, ["codeswitch.paper.treshold", "unknown key"]),
    ("train", "smoke", {"lr": "0.001"}, ["train.smoke.lr", "'0.001'", "float"]),
    ("train", "proxy", {"weight_decay": DELETE}, ["train.proxy.weight_decay", "missing key"]),
    ("train", "paper", {"epoch": 2}, ["train.paper.epoch", "unknown key", "'epochs'"]),
    ("train", "smoke", {"mixup": {"distribution": "uniform", "alpha": 1.0, "beta": 1.0}},
     ["train.smoke.mixup.per_position", "missing key"]),
    ("train", "smoke", {"loss_terms": "mixed"}, ["train.smoke.loss_terms", "'mixed'"]),
    ("evaluate", "smoke", {"batch": 64}, ["evaluate.smoke.batch", "unknown key"]),
    ("evaluate", "proxy", {"precision": DELETE}, ["evaluate.proxy.precision", "missing key"]),
    ("evaluate", "paper", {"precision": "bfloat16"}, ["evaluate.paper.precision", "'bfloat16'",
                                                      "fp32"]),
]


@pytest.mark.parametrize(("group", "profile", "change", "named"), BAD,
                         ids=[f"{g}.{p}.{next(iter(c))}" for g, p, c, _ in BAD])
def test_bad_key_is_named(tmp_path, group, profile, change, named):
    # the error comes whichever profile is selected: every profile is checked at load
    params = {**_edit(group, profile, **change), "seeds": [0, 1]}  # smoke asks for two seeds
    message = _error(tmp_path, params, profile="smoke")
    assert message.startswith(f"{tmp_path / 'params.yaml'}: "), message
    for part in named:
        assert part in message, (part, message)


# values out of range: probabilities outside [0, 1], counts below 1, negative thresholds
OUT_OF_RANGE = [
    ("data", "smoke", {"train": 0}, "data.smoke.train"),
    ("data", "smoke", {"subset_seed": -1}, "data.smoke.subset_seed"),
    ("model", "smoke", {"tiny": {**RAW["model"]["smoke"]["tiny"], "layers": 0}},
     "model.smoke.tiny.layers"),
    ("vocab", "proxy", {"min_count": 0}, "vocab.proxy.min_count"),
    ("vocab", "proxy", {"source_share_ratio": -1.0}, "vocab.proxy"),
    ("mlm", "proxy", {"mask_prob": 1.5}, "mlm.proxy.mask_prob"),
    ("mlm", "proxy", {"held_out_fraction": 1.0}, "mlm.proxy.held_out_fraction"),
    ("mlm", "smoke", {"eval_sentences": 0}, "mlm.smoke.eval_sentences"),
    ("codeswitch", "smoke", {"threshold": -0.1}, "codeswitch.smoke.threshold"),
    ("codeswitch", "smoke", {"max_ratio": 1.2}, "codeswitch.smoke.max_ratio"),
    ("codeswitch", "proxy", {"copies": 0}, "codeswitch.proxy.copies"),
    ("train", "smoke", {"warmup_ratio": 2.0}, "train.smoke.warmup_ratio"),
    ("train", "smoke", {"batch_size": 0}, "train.smoke.batch_size"),
    ("train", "proxy", {"mixup": {**RAW["train"]["proxy"]["mixup"], "alpha": -1.0}},
     "train.proxy.mixup.alpha"),
    ("train", "paper", {"min_seeds": 0}, "train.paper.min_seeds"),
    ("evaluate", "smoke", {"batch_size": 0}, "evaluate.smoke.batch_size"),
]


@pytest.mark.parametrize(("group", "profile", "change", "key"), OUT_OF_RANGE,
                         ids=[f"{g}.{p}.{next(iter(c))}" for g, p, c, _ in OUT_OF_RANGE])
def test_out_of_range_is_refused(tmp_path, group, profile, change, key):
    params = {**_edit(group, profile, **change), "seeds": [0, 1]}  # smoke asks for two seeds
    message = _error(tmp_path, params, profile="smoke")
    assert key in message, message
    value = next(iter(change.values()))
    if not isinstance(value, dict):
        assert repr(value) in message, message


def test_choice_outside_the_method_set_is_refused(tmp_path):
    """The method's own checks (here CodeSwitchConfig's normalize) also name the key."""
    message = _error(tmp_path, _edit("codeswitch", "proxy", normalize="softmax"))
    assert "codeswitch.proxy" in message and "normalize" in message and "softmax" in message


def test_exponent_is_a_float(tmp_path):
    """PyYAML's SafeLoader reads 1e-3 as a string; ours reads the number it is."""
    text = (ROOT / "params.yaml").read_text()
    assert "lr: 0.001," in text
    path = tmp_path / "params.yaml"
    text = text.replace("\nseeds: [0]\n", "\nseeds: [0, 1]\n", 1)  # smoke asks for two seeds
    path.write_text(text.replace("lr: 0.001,", "lr: 1e-3,", 1))
    assert yaml.safe_load(path.read_text())["train"]["smoke"]["lr"] == "1e-3"  # the pitfall
    params = load_params(path, "smoke")
    check_all(params)
    assert read_yaml(path)["train"]["smoke"]["lr"] == 0.001
    cfg = train.configure(params, _Args("xnli", "salt", 0))
    assert cfg.method.lr == 0.001 and isinstance(cfg.method.lr, float)


class _Args:
    def __init__(self, task: str, system: str, seed: int):
        self.task, self.system, self.seed = task, system, seed


def test_configs_are_frozen_and_typed():
    params = replace(load_params(ROOT / "params.yaml", "smoke"), seeds=(0, 1))  # smoke: 2 seeds
    cfg = train.configure(params, _Args("xnli", "baseline", 1))
    with pytest.raises(AttributeError):
        cfg.task = "pawsx"  # type: ignore[misc]
    assert cfg.method.seed == 1 and cfg.method.system == "baseline"
    assert cfg.method.mixup.distribution == "uniform"
    data = prepare.configure(params)
    with pytest.raises(ValidationError):  # frozen
        data.settings.train = 5  # type: ignore[misc]


def test_bad_key_stops_the_cli_before_any_work(tmp_path, capsys):
    """A typo in another stage's group, in another profile, stops `prepare` before it writes."""
    path = _write(tmp_path, _edit("train", "paper", trian=1))
    work = tmp_path / "run"
    assert cli.main(["--params", str(path), "--profile", "smoke", "--workdir", str(work),
                     "prepare"]) == 2
    err = capsys.readouterr().err
    assert "train.paper.trian" in err and "unknown key" in err
    assert not work.exists()


def test_min_seeds_guards_the_selected_profile(tmp_path):
    params = copy.deepcopy(RAW)
    params["seeds"] = [0, 1]
    message = _error(tmp_path, params, profile="paper")
    assert "needs at least 5 seeds" in message and "train.paper.min_seeds" in message
    check_all(load_params(_write(tmp_path, params), "smoke"))  # smoke needs 2


def test_top_level_typo_and_missing_profile(tmp_path):
    params = copy.deepcopy(RAW)
    params["seed"] = params.pop("seeds")
    with pytest.raises(ConfigError, match="unknown top-level key 'seed'"):
        load_params(_write(tmp_path, params))
    params = copy.deepcopy(RAW)
    del params["vocab"]["proxy"]
    with pytest.raises(ConfigError, match=r"key 'vocab.proxy' missing"):
        load_params(_write(tmp_path, params), "proxy")


def test_unlabeled_halves_are_disjoint_and_cover():
    en, other = prepare.unlabeled_items(101, "disjoint_halves", seed=3)
    assert not set(en) & set(other) and sorted(en + other) == list(range(101))
    assert abs(len(en) - len(other)) <= 1
    assert prepare.unlabeled_items(101, "disjoint_halves", seed=3) == (en, other)
    assert prepare.unlabeled_items(101, "disjoint_halves", seed=4) != (en, other)
    shared = prepare.unlabeled_items(5, "shared", seed=0)
    assert shared == (list(range(5)), list(range(5)))
