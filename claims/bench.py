"""The bench every property check runs on, and the machinery that drives the checks.

A ``Bench`` is a tiny random BERT whose WordPiece vocabulary and per-language sub-word sets are
built from real XNLI dev text (``$SALT_DATA_DIR``). Its predictions are noise, so thresholds are
drawn low enough that substitutions happen; the properties do not depend on prediction quality,
which ``salt.codeswitch.codeswitch_stats`` measures on the real pipeline.

``explore`` runs one property with a seeded, database-free Hypothesis run; ``verdict`` turns the
explorations into ``{"verdict", "evidence", "details"}``; ``checked`` runs a check quietly on one
thread and turns a crash of the check itself into the verdict "error", never "holds" or "fails".
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import random
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from salt import codeswitch as cs_mod
from salt import evaluate as eval_mod
from salt import mixup as mixup_mod
from salt import train as train_mod
from salt.codeswitch import switch as switch_mod
from salt.data import load_local, stratified_subset
from salt.encoding import Encoded, encode_pairs
from salt.models import load_masked_lm, load_tokenizer
from salt.vocab import LanguageVocabs, build_vocabularies

CodeSwitcher = Callable[..., list[dict[str, Any]]]
"""``(model, tokenizer, encoded, vocabs, config) -> records`` like ``salt.codeswitch.code_switch``."""

BENCH_LANGS = ("en", "fr", "de", "es")
NUM_LABELS = 3
TOL = 1e-4  # probabilities: recorded vs recomputed (fp32 fast path vs fp64 definition)
ALPHA = 0.01  # KS test level for the distribution of r (C8)


class Violation(AssertionError):
    """A property failed; the message names the property and the offending values."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise Violation(message)


# ----------------------------------------------------------------------------- implementations


def default_code_switch(model, tokenizer, encoded, vocabs, config) -> list[dict[str, Any]]:
    """The real code-switcher (fast path, no progress bar)."""
    return cs_mod.code_switch(model, tokenizer, encoded, vocabs, config, progress=False)


@dataclass(frozen=True)
class MixupImpl:
    """The mixup and training functions C6-C8 exercise; replace one to audit a broken variant.

    C8 patches ``sample_r``, ``step_generator`` and ``mixed_input_embeddings`` into
    ``salt.train`` for the duration of a real ``train()`` run, so the loop itself is tested.
    """

    sample_r: Callable = mixup_mod.sample_r
    mix_embeddings: Callable = mixup_mod.mix_embeddings
    mixed_input_embeddings: Callable = mixup_mod.mixed_input_embeddings
    step_generator: Callable = mixup_mod.step_generator
    salt_loss: Callable = train_mod.salt_loss
    predict: Callable = eval_mod.predict


# ----------------------------------------------------------------------------- the bench


@dataclass
class Bench:
    """Tiny model, tokenizer, language sets and English pairs shared by the checks."""

    model_dir: Path
    tokenizer: Any
    mlm: Any  # BertForMaskedLM, eval mode
    vocabs: LanguageVocabs
    words: list[str]  # English words for random sentences
    pairs: list[Encoded]  # real English pairs (XNLI dev), encoded
    train_items: list[Any]  # TrainItem with two synthetic code-switched copies each
    data_dir: Path
    vocab_rule: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # code-switch records of train_items

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def describe(self) -> str:
        cfg = self.mlm.config
        sizes = ", ".join(f"{lang} {len(self.vocabs.entries[lang])}" for lang in self.vocabs.entries)
        return (f"tiny random BERT (hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, "
                f"vocab {cfg.vocab_size}) with WordPiece vocabulary and language sets built from "
                f"XNLI dev text ({'/'.join(BENCH_LANGS)}; set sizes {sizes}; rule {self.vocab_rule})")


_BENCHES: dict[tuple[str, str], Bench] = {}


def build_bench_model(out_dir: str | Path, texts: Sequence[str], n_words: int = 1200,
                      hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """A tiny random BERT with a deterministic WordPiece vocabulary: specials, every character
    seen (as word start and as ``##`` continuation) and the ``n_words`` most frequent words
    (ties by spelling). ``salt.models.build_tiny`` trains its vocabulary with the ``tokenizers``
    trainer, whose tie-breaking differs between processes; this keeps the audit reproducible."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pre = BertPreTokenizer()
    counts: Counter[str] = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(t))
    chars = sorted({c for w in counts for c in w})
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1]
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars,
                                *(f"##{c}" for c in chars), *words[:n_words]]))
    tok = Tokenizer(models.WordPiece(vocab={p: i for i, p in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, unk_token="[UNK]",
                      pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                      mask_token="[MASK]", model_max_length=256).save_pretrained(out)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden,
                        max_position_embeddings=256, pad_token_id=0)
    torch.manual_seed(seed)
    BertForMaskedLM(config).save_pretrained(out, safe_serialization=True)
    return out


def get_bench(model_dir: str | Path | None = None, data_dir: str | Path | None = None) -> Bench:
    """Build (once per process) the bench; ``model_dir`` reuses an existing tiny BERT folder."""
    from salt.data import data_dir as resolve_data_dir

    root = resolve_data_dir(data_dir)
    key = (str(model_dir), str(root))
    if key in _BENCHES:
        return _BENCHES[key]
    texts: dict[str, list[str]] = {}
    for lang in BENCH_LANGS:
        texts[lang] = [t for ex in load_local("xnli", "dev", lang, root)[:150]
                       for t in (ex.text_a, ex.text_b)]
    if model_dir is None:
        tmp = tempfile.mkdtemp(prefix="salt-claims-")
        atexit.register(shutil.rmtree, tmp, True)
        with quiet():
            model_dir = build_bench_model(Path(tmp) / "tiny", [t for ts in texts.values() for t in ts])
    model_dir = Path(model_dir)
    tok = load_tokenizer(model_dir)
    with quiet():
        mlm = load_masked_lm(model_dir).eval()
    rule = {"min_count": 1, "source_top_k": 300}
    vocabs = build_vocabularies(tok, texts, **rule)
    words = sorted({w for t in texts["en"] for w in t.split() if any(c.isalpha() for c in w)})
    en = load_local("xnli", "dev", "en", root)
    pairs = encode_pairs(tok, en[1000:1030], max_length=48)
    enc = encode_pairs(tok, stratified_subset(en, 32, 0), max_length=48)
    specials = set(tok.all_special_ids)
    fr = vocabs.ids("fr").tolist()
    gen = np.random.default_rng(0)
    records = []
    for e in enc:
        for copy_id in range(2):  # two synthetic copies: a third of the tokens -> French ids
            cs = [int(gen.choice(fr)) if t not in specials and gen.random() < 1 / 3 else t
                  for t in e.input_ids]
            records.append({"uid": e.uid, "copy": copy_id, "lang": "fr", "label": e.label,
                            "input_ids": list(e.input_ids), "cs_input_ids": cs,
                            "substitutions": [[p, a, b, None, "fr"] for p, (a, b)
                                              in enumerate(zip(e.input_ids, cs, strict=True))
                                              if a != b]})
    items = train_mod.items_from_codeswitch(records, enc)
    bench = Bench(model_dir, tok, mlm, vocabs, words, pairs, items, root, rule, records)
    _BENCHES[key] = bench
    return bench


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence transformers' load reports and tqdm bars while a check runs."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    mods = [m for m in (switch_mod, eval_mod) if hasattr(m, "tqdm")]  # where bars are drawn
    real = [m.tqdm for m in mods]

    def silent(fn: Callable) -> Callable:
        def bar(*a: Any, **k: Any) -> Any:
            return fn(*a, **{**k, "disable": True})
        return bar

    for m, fn in zip(mods, real, strict=True):
        m.tqdm = silent(fn)
    try:
        yield
    finally:
        for m, fn in zip(mods, real, strict=True):
            m.tqdm = fn
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def checked(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run a check quietly on one CPU thread (tiny models gain nothing from threads and lose a
    lot to oversubscription on a shared machine); restore both afterwards. A crash of the check
    is returned as the verdict "error" with what crashed and where."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        threads = torch.get_num_threads()
        rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
        torch.set_num_threads(1)
        try:
            with quiet():
                return fn(*args, **kwargs)
        except Exception as err:  # outside explore: setup or a probe crashed
            claim = fn.__name__.removeprefix("check_").upper()
            return {"verdict": "error", "details": {"crash": crash_message(err)},
                    "evidence": f"{claim} not decided: the check crashed: {crash_message(err)}"}
        finally:  # train() reseeds the global generators; give the caller its own back
            torch.set_num_threads(threads)
            torch.set_rng_state(rng[0])
            random.setstate(rng[1])
            np.random.set_state(rng[2])

    return wrapper


@contextlib.contextmanager
def patched(obj: Any, **attrs: Any) -> Iterator[None]:
    """Set attributes for the duration of the block and restore them."""
    old = {k: getattr(obj, k) for k in attrs}
    for k, v in attrs.items():
        setattr(obj, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(obj, k, v)


# ----------------------------------------------------------------------------- hypothesis driver


@dataclass
class Exploration:
    """Outcome of one Hypothesis run of a property."""

    name: str
    settings: dict[str, Any]
    passed: int = 0  # examples that satisfied the property
    failure: tuple[Any, str] | None = None  # (counterexample, message): a named property failed
    error: tuple[Any, str] | None = None  # (example, message): the check itself crashed
    runtime_s: float = 0.0


def crash_message(err: BaseException) -> str:
    """``KeyError: 'x' (at file.py:123 in fn)``: what crashed and where, for an "error" verdict."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" \
        if frames else ""
    return f"{type(err).__name__}: {err}{where}"


def fmt(*values: float) -> list[str]:
    """The values with the fewest significant digits (at least 6) that tell different ones apart,
    so evidence never prints "1.09877 is not 1.09877"."""
    for digits in range(6, 18):
        text = [f"{float(v):.{digits}g}" for v in values]
        if len(set(text)) == len({float(v) for v in values}):
            return text
    return [repr(float(v)) for v in values]


def _short(obj: Any, limit: int = 500) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def explore(name: str, prop: Callable[[Any], None], strategy: st.SearchStrategy, *, seed: int,
            max_examples: int, shrink: bool = True) -> Exploration:
    """Run ``prop`` over ``strategy`` with a seeded, database-free Hypothesis run.

    A ``Violation`` is a failure of the property: the last failing example Hypothesis replays is
    the shrunk counterexample reported. Any other exception is an error of the check (``error``):
    it decides nothing about the claim.
    """
    phases = (Phase.explicit, Phase.generate) + ((Phase.shrink,) if shrink else ())
    record = {"max_examples": max_examples, "seed": seed, "database": None, "deadline": None,
              "derandomize": False, "phases": [p.name for p in phases]}
    out = Exploration(name, record)
    failures: list[tuple[Any, str, str]] = []  # (case, message, "failure" | "error")

    @hypothesis_seed(seed)
    @settings(max_examples=max_examples, database=None, deadline=None, derandomize=False,
              phases=phases, suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              verbosity=Verbosity.quiet, print_blob=False)
    @given(strategy)
    def run(case: Any) -> None:
        try:
            prop(case)
        except Violation as err:
            failures.append((case, str(err), "failure"))
            raise
        except Exception as err:
            failures.append((case, crash_message(err), "error"))
            raise
        out.passed += 1

    start = time.perf_counter()
    try:
        run()
    except Exception:
        if not failures:
            raise
        named = [f for f in failures if f[2] == "failure"]  # a named property beats a crash
        if named:
            out.failure = named[-1][:2]
        else:
            out.error = failures[-1][:2]
    out.runtime_s = round(time.perf_counter() - start, 3)
    out.settings["examples_passed"] = out.passed
    return out


def verdict(claim: str, summary: str, runs: Sequence[Exploration], bench: Bench | None,
             notes: Sequence[str] = (), extra_failure: str | None = None,
             inconclusive: str | None = None, details: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """Assemble a check's result from its explorations (first failure wins; a crash of the
    check gives "error", not a verdict on the claim)."""
    info = {"explorations": [{"name": r.name, "settings": r.settings, "runtime_s": r.runtime_s}
                             for r in runs], **(details or {})}
    if bench is not None:
        info["bench"] = bench.describe()
    for r in runs:
        if r.failure is None and r.error is not None:
            case, msg = r.error
            info["crashed_on"] = _short(case, 2000)
            return {"verdict": "error", "details": info,
                    "evidence": f"{claim} not decided: the check crashed ({r.name}): {msg}; on "
                                f"example (Hypothesis seed {r.settings['seed']}): {_short(case)}"}
    for r in runs:
        if r.failure is not None:
            case, msg = r.failure
            info["counterexample"] = _short(case, 2000)
            return {"verdict": "fails", "details": info,
                    "evidence": f"{claim} VIOLATED ({r.name}): {msg}; counterexample "
                                f"(Hypothesis seed {r.settings['seed']}): {_short(case)}"}
    if extra_failure is not None:
        return {"verdict": "fails", "details": info, "evidence": f"{claim} VIOLATED: {extra_failure}"}
    runs_text = "; ".join(f"{r.name}: {r.passed} examples" for r in runs)
    if inconclusive is not None:
        return {"verdict": "inconclusive", "details": info,
                "evidence": f"{claim}: {inconclusive} ({runs_text})"}
    text = f"{claim} holds: {summary} ({runs_text}; Hypothesis seed {runs[0].settings['seed']})"
    if notes:
        text += ". " + " ".join(notes).rstrip(".")
    if bench is not None:
        text += f". Bench: {bench.describe()}"
    return {"verdict": "holds", "evidence": text, "details": info}


