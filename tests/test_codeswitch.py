"""Offline code-switching: definition vs fast path, properties over random inputs, files, stats.

A tiny random BERT with a WordPiece vocabulary learned from en/fr/de XNLI dev text stands in
for the model: its predictions are noise, near uniform (restricted probabilities ~0.003 over the
target set, ~0.001 under the full softmax), so thresholds sit inside that range and some
substitutions pass while others do not; the properties do not depend on prediction quality.
"""

from __future__ import annotations

import copy
import json
import math
import os
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from transformers import BertTokenizerFast

from salt.codeswitch import (
    SYNONYM_TAG,
    CodeSwitchConfig,
    CodeSwitchError,
    MaskedLMScorer,
    StalePartialOutput,
    Substitution,
    code_switch,
    code_switch_reference,
    codeswitch_stats,
    input_mode_for,
    meta_path,
    read_jsonl,
    read_muse,
    write_jsonl,
)
from salt.encoding import Encoded, encode_pairs
from salt.runtime import decide
from salt.vocab import build_vocabularies

DATA = Path(os.environ.get("SALT_DATA_DIR", "/work/shared/data"))
LANGS = ("en", "fr", "de")


class Env:
    """The shared tiny model, tokenizer, vocabularies and English pairs."""

    def __init__(self, root: Path):
        from salt.data import load_local
        from salt.models import build_tiny, load_masked_lm, load_tokenizer

        texts = {}
        for lang in LANGS:
            rows = load_local("xnli", "dev", lang, DATA)[:200]
            texts[lang] = [t for e in rows for t in (e.text_a, e.text_b)]
        path = build_tiny(root, [t for ts in texts.values() for t in ts], vocab_size=1500,
                          hidden=32, layers=2, heads=2)
        self.tok = load_tokenizer(path)
        self.model = load_masked_lm(path).eval()
        self.vocabs = build_vocabularies(self.tok, texts, min_count=2, source_top_k=150)
        en = load_local("xnli", "dev", "en", DATA)[1000:1040]
        self.pairs = encode_pairs(self.tok, en, max_length=40)
        self.specials = set(self.tok.all_special_ids)


FP32 = decide("fp32", device="cpu")


@pytest.fixture(autouse=True)
def _fp32_default(monkeypatch):
    """The fast path is compared with the fp32 definition: a call without ``runtime`` runs in
    fp32 here whatever this CPU supports (``test_runtime_is_recorded`` passes one explicitly)."""
    from salt.codeswitch import reference, switch

    monkeypatch.setattr(switch, "decide", lambda *a, **k: FP32)
    monkeypatch.setattr(reference, "decide", lambda *a, **k: FP32)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # one thread: the tiny model gains nothing from more, and the CI machine is shared
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield Env(tmp_path_factory.mktemp("tiny"))
    torch.set_num_threads(threads)


def key(records: list[dict]) -> list:
    """Everything but the float probabilities (compared separately with a tolerance)."""
    return [(r["uid"], r["copy"], r["lang"], r["cs_input_ids"], r["candidates"],
             [s[:3] + s[4:] for s in r["substitutions"]]) for r in records]


def same(a: list[dict], b: list[dict]) -> None:
    assert key(a) == key(b)
    for r, q in zip(a, b, strict=True):
        for s, t in zip(r["substitutions"], q["substitutions"], strict=True):
            assert math.isclose(s[3], t[3], rel_tol=1e-5, abs_tol=1e-7)


def n_subs(records: list[dict]) -> int:
    return sum(len(r["substitutions"]) for r in records)


# ----------------------------------------------------------------------------- definition


CONFIGS = {
    "target": CodeSwitchConfig(normalize="target", threshold=0.0031, languages=("fr", "de"), max_ratio=1.0,
                               batch_size=37),
    "full": CodeSwitchConfig(threshold=0.0, normalize="full", languages=("de",), max_ratio=0.3,
                             batch_size=200),
    "each+syn": CodeSwitchConfig(normalize="target", threshold=0.0031, assignment="each", synonyms=True,
                                 synonym_threshold=0.0033, max_ratio=0.6, batch_size=16),
    "copies3+any": CodeSwitchConfig(normalize="target", threshold=0.0, languages=("fr", "de"), copies=3,
                                    candidate="any", batch_size=64),
}


@pytest.mark.parametrize("cfg", list(CONFIGS.values()), ids=list(CONFIGS))
def test_fast_path_equals_definition(env: Env, cfg: CodeSwitchConfig) -> None:
    pairs = env.pairs[:6]
    ref = code_switch_reference(env.model, env.tok, pairs, env.vocabs, cfg)
    fast = code_switch(env.model, env.tok, pairs, env.vocabs, cfg, progress=False, chunk_size=5)
    assert n_subs(ref) > 0
    same(ref, fast)


class CountingScorer(MaskedLMScorer):
    """Records the (B, T) shape of every encoder call."""

    def __init__(self, model):
        super().__init__(model)
        self.calls: list[tuple[int, int]] = []

    def encode(self, input_ids, attention_mask, token_type_ids):
        self.calls.append(tuple(input_ids.shape))
        return super().encode(input_ids, attention_mask, token_type_ids)


@pytest.mark.parametrize("name", ["target", "full", "each+syn", "copies3+any"])
def test_unmasked_fast_path_equals_definition(env: Env, name: str) -> None:
    """input="unmasked": one pass per sentence (fast) vs one full pass per candidate (reference),
    neither masking anything; the records differ from masked mode."""
    cfg = replace(CONFIGS[name], input="unmasked", batch_size=4)
    pairs = env.pairs[:6]
    ref = code_switch_reference(env.model, env.tok, pairs, env.vocabs, cfg)
    scorer = CountingScorer(env.model)
    fast = code_switch(env.model, env.tok, pairs, env.vocabs, cfg, progress=False, chunk_size=5,
                       scorer=scorer)
    assert n_subs(ref) > 0
    same(ref, fast)
    # chunks of 5 and 1 sentences, 4 sentences a pass: 2 + 1 passes of whole sentences
    assert [b for b, _ in scorer.calls] == [4, 1, 1]
    masked = code_switch(env.model, env.tok, pairs, env.vocabs, replace(cfg, input="masked"),
                         progress=False)
    assert key(masked) != key(fast)
    # the full-logits fallback (no split head) agrees too
    unsplit = MaskedLMScorer(env.model)
    unsplit.split = False
    same(ref, code_switch(env.model, env.tok, pairs, env.vocabs, cfg, progress=False,
                          scorer=unsplit))


def test_pruned_head_normaliser_skips_excluded_ids_exactly(env: Env) -> None:
    """A head whose excluded ids carry EXCLUDED_BIAS (salt.mlm's pruned heads): the "full"
    normaliser sums the live ids only, and the records equal the full-softmax definition."""
    from salt.mlm import EXCLUDED_BIAS

    model = copy.deepcopy(env.model)
    bias = model.get_output_embeddings().bias
    excluded = torch.arange(len(bias)) % 3 == 0  # a third of the vocabulary pruned
    excluded[list(env.specials)] = False
    for lang in ("fr", "de"):
        excluded[env.vocabs.ids(lang)] = False  # the targets stay scorable
    with torch.no_grad():
        bias[excluded] = EXCLUDED_BIAS
    scorer = MaskedLMScorer(model)
    assert scorer.live is not None and len(scorer.live) == int((~excluded).sum())
    feats = torch.randn(5, model.config.hidden_size)
    assert torch.allclose(scorer.log_normaliser(feats),
                          torch.logsumexp(scorer.logits(feats), dim=-1), atol=1e-5)
    cfg = replace(CONFIGS["full"], languages=("fr", "de"), threshold=0.0005)
    pairs = env.pairs[:6]
    ref = code_switch_reference(model, env.tok, pairs, env.vocabs, cfg)
    assert n_subs(ref) > 0
    same(ref, code_switch(model, env.tok, pairs, env.vocabs, cfg, progress=False, scorer=scorer))
    assert MaskedLMScorer(env.model).live is None  # nothing excluded: every id is summed


def test_unsplit_scorer_and_far_stride_equal_definition(env: Env) -> None:
    cfg = CodeSwitchConfig(normalize="target", threshold=0.003, languages=("fr",), max_ratio=1.0)
    pairs = env.pairs[:6]
    ref = code_switch_reference(env.model, env.tok, pairs, env.vocabs, cfg)
    scorer = MaskedLMScorer(env.model)
    assert scorer.split  # BERT's head splits into transform + restricted decoder
    scorer.split = False  # the full-logits fallback must agree too
    same(ref, code_switch(env.model, env.tok, pairs, env.vocabs, cfg, progress=False,
                          scorer=scorer))
    # a stride longer than any sentence masks one position per copy: the exact case again
    far = replace(cfg, multi_mask_stride=1000)
    same(ref, code_switch(env.model, env.tok, pairs, env.vocabs, far, progress=False))
    near = replace(cfg, multi_mask_stride=3)
    approx = code_switch(env.model, env.tok, pairs, env.vocabs, near, progress=False)
    assert [len(r["cs_input_ids"]) for r in approx] == [len(p.input_ids) for p in pairs]
    fr = set(env.vocabs.ids("fr").tolist())
    assert all(s[2] in fr for r in approx for s in r["substitutions"])


def test_row_offsets_shift_the_head_input(env: Env) -> None:
    """Language-mean centring: rows for 'fr' get an offset before the head; others do not."""
    pairs = env.pairs[:4]
    cfg = CodeSwitchConfig(normalize="target", threshold=0.0, languages=("fr", "de"), assignment="each",
                           max_ratio=1.0)
    zero = MaskedLMScorer(env.model, row_offsets={"fr": torch.zeros(32)})
    same(code_switch_reference(env.model, env.tok, pairs, env.vocabs, cfg),
         code_switch(env.model, env.tok, pairs, env.vocabs, cfg, progress=False, scorer=zero))
    shift = torch.randn(32, generator=torch.Generator().manual_seed(1))
    scorer = MaskedLMScorer(env.model, row_offsets={"fr": shift})
    recs = code_switch(env.model, env.tok, pairs, env.vocabs, cfg, progress=False, scorer=scorer)
    lids = env.vocabs.ids("fr")
    for r in recs:
        if r["lang"] != "fr":
            continue
        for pos, _, new, prob, _ in r["substitutions"]:
            ids = torch.tensor([r["input_ids"]])
            ids[0, pos] = env.tok.mask_token_id
            with torch.no_grad():
                h = env.model.bert(ids, token_type_ids=torch.tensor([r["token_type_ids"]]))[0]
                logits = env.model.cls(h[0, pos] + shift)  # (V,)
            probs = torch.softmax(logits[lids], -1)
            assert int(lids[probs.argmax()]) == new
            assert math.isclose(prob, float(probs.max()), rel_tol=1e-4)
    de_ref = [r for r in code_switch_reference(env.model, env.tok, pairs, env.vocabs, cfg)
              if r["lang"] == "de"]
    same(de_ref, [r for r in recs if r["lang"] == "de"])


def sentencepiece_bench(texts: dict[str, list[str]]):
    """A random XLM-R masked LM with a SentencePiece-style (unigram, Metaspace) tokenizer, the
    layout of the e5-small proxy's tokenizer and of XLM-R's ``lm_head``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForMaskedLM

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator([t for ts in texts.values() for t in ts], trainers.UnigramTrainer(
        vocab_size=2000, special_tokens=specials, unk_token="<unk>", show_progress=False))
    tok.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   cls_token="<s>", sep_token="</s>")
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(
        vocab_size=len(fast), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, pad_token_id=1, max_position_embeddings=80, type_vocab_size=1))
    return fast, model.eval()


def test_sentencepiece_tokenizer_and_roberta_head(env: Env) -> None:
    from salt.data import load_local

    texts = {lang: [t for e in load_local("xnli", "dev", lang, DATA)[:150]
                    for t in (e.text_a, e.text_b)] for lang in ("en", "fr", "zh")}
    tok, model = sentencepiece_bench(texts)
    vocabs = build_vocabularies(tok, texts, min_count=2, source_top_k=100)
    assert vocabs.rule.scheme == "metaspace"
    # Chinese pieces rarely carry '▁': the unspaced-script rule keeps them as word starts
    assert len(vocabs.ids("zh")) > 100
    assert MaskedLMScorer(model).split  # dense + gelu + layer_norm, then the decoder
    pairs = encode_pairs(tok, load_local("xnli", "dev", "en", DATA)[500:508], max_length=48)
    cfg = CodeSwitchConfig(threshold=0.0, normalize="full", assignment="each", max_ratio=0.5)
    ref = code_switch_reference(model, tok, pairs, vocabs, cfg)
    assert n_subs(ref) > 0
    same(ref, code_switch(model, tok, pairs, vocabs, cfg, progress=False, chunk_size=3))
    specials = set(tok.all_special_ids)
    for r in ref:
        pieces = tok.convert_ids_to_tokens(r["input_ids"])
        for p in r["candidates"]:
            nxt = pieces[p + 1]
            assert pieces[p].startswith("▁") and len(pieces[p]) > 1
            assert (nxt.startswith("▁") or r["input_ids"][p + 1] in specials
                    or not any(ch.isalnum() for ch in nxt))


# ----------------------------------------------------------------------------- properties


def independent_candidates(env: Env, ids: list[int]) -> list[int]:
    """WordPiece single-word candidates, written without the module's helpers."""
    pieces = env.tok.convert_ids_to_tokens(ids)
    out = []
    for p, piece in enumerate(pieces):
        if ids[p] in env.specials or piece.startswith("##"):
            continue
        if not any(ch.isalpha() for ch in piece):
            continue
        nxt = pieces[p + 1] if p + 1 < len(pieces) else ""
        if nxt.startswith("##") and not all(unicodedata.category(ch)[0] in "PSZ" for ch in nxt[2:]):
            continue  # glued to a continuation; a punctuation continuation ('##’') does not glue
        out.append(p)
    return out


def recompute(env: Env, rec: dict, pos: int, lids: torch.Tensor, normalize: str,
              exclude: int | None = None, masked: bool = True) -> torch.Tensor:
    """The model's restricted probabilities at ``pos`` with only that position masked (or, with
    ``masked=False``, the sentence unmodified)."""
    ids = torch.tensor([rec["input_ids"]])
    if masked:
        ids[0, pos] = env.tok.mask_token_id
    kw = {"input_ids": ids}
    if rec["token_type_ids"] is not None:
        kw["token_type_ids"] = torch.tensor([rec["token_type_ids"]])
    with torch.no_grad():
        logits = env.model(**kw).logits[0, pos]  # (V,)
    full = torch.softmax(logits, -1)[lids]
    probs = torch.softmax(logits[lids], -1) if normalize == "target" else full
    if exclude is not None:
        probs = probs.masked_fill(lids == exclude, -1.0)
    return probs


def random_pairs(draw, env: Env) -> list[Encoded]:
    real = draw(st.lists(st.sampled_from(env.pairs), min_size=1, max_size=3, unique_by=id))
    n_rand = draw(st.integers(0, 2))
    out = list(real)
    for k in range(n_rand):
        body = draw(st.lists(st.integers(5, len(env.tok) - 1), min_size=1, max_size=20))
        ids = [env.tok.cls_token_id, *body, env.tok.sep_token_id]
        out.append(Encoded(f"rand:{k}", ids, [0] * len(ids), 0))
    return out


@st.composite
def scenario(draw, env: Env):
    pairs = random_pairs(draw, env)
    normalize = draw(st.sampled_from(["target", "full"]))
    scale = 0.0035 if normalize == "target" else 0.001  # the tiny model's range (see top)
    # 1.5 switches target substitution off, which leaves every candidate to the synonym mode
    threshold = draw(st.one_of(st.just(0.0), st.floats(0.0, scale), st.just(1.5)))
    synonyms = draw(st.booleans())
    cfg = CodeSwitchConfig(
        threshold=threshold, normalize=normalize,
        languages=tuple(draw(st.permutations(["fr", "de"]))[: draw(st.integers(1, 2))]),
        assignment=draw(st.sampled_from(["round_robin", "each"])),
        max_ratio=draw(st.sampled_from([0.0, 0.2, 0.5, 1.0])),
        synonyms=synonyms,
        synonym_threshold=draw(st.one_of(st.just(0.0), st.floats(0.0, scale))),
        batch_size=draw(st.integers(1, 50)))
    if cfg.assignment == "round_robin":
        cfg = replace(cfg, copies=draw(st.integers(1, 3)))
    return pairs, cfg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_properties(env: Env, data) -> None:
    pairs, cfg = data.draw(scenario(env))
    check_properties(env, pairs, cfg)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_properties_unmasked(env: Env, data) -> None:
    """input="unmasked": every substitute is in its set, >= its threshold, and the arg-max of
    the restricted probabilities of the unmodified sentence at that position."""
    pairs, cfg = data.draw(scenario(env))
    check_properties(env, pairs, replace(cfg, input="unmasked"))


def check_properties(env: Env, pairs: list[Encoded], cfg: CodeSwitchConfig) -> None:
    masked = cfg.input == "masked"
    recs = code_switch(env.model, env.tok, pairs, env.vocabs, cfg, progress=False)
    event("substitutions" if n_subs(recs) else "no substitution")
    event("synonym substitutions" if any(s[4] == SYNONYM_TAG for r in recs
                                         for s in r["substitutions"]) else "no synonym")
    n_copies = len(cfg.languages) if cfg.assignment == "each" else cfg.copies
    assert len(recs) == len(pairs) * n_copies
    sets = {lang: env.vocabs.ids(lang) for lang in ("fr", "de", "en")}
    for i, r in enumerate(recs):
        src = pairs[i // n_copies]
        c = r["copy"]
        want = (cfg.languages[c] if cfg.assignment == "each"
                else cfg.languages[(i // n_copies + c) % len(cfg.languages)])
        assert r["lang"] == want and r["uid"] == src.uid and r["input_ids"] == src.input_ids
        assert len(r["cs_input_ids"]) == len(src.input_ids)
        cands = independent_candidates(env, src.input_ids)
        assert r["candidates"] == cands
        changed = [p for p, (a, b) in enumerate(zip(src.input_ids, r["cs_input_ids"], strict=True))
                   if a != b]
        assert set(changed) <= set(cands)  # non-candidates never change
        assert changed == [s[0] for s in r["substitutions"]]
        assert len(changed) <= math.floor(cfg.max_ratio * len(cands) + 1e-9)
        for pos, orig, new, prob, tag in r["substitutions"]:
            assert orig == src.input_ids[pos] and new != orig
            if tag == SYNONYM_TAG:
                assert cfg.synonyms
                lids, thr, excl = sets["en"], cfg.synonym_threshold, orig
            else:
                assert tag == r["lang"]
                lids, thr, excl = sets[tag], cfg.threshold, None
            assert new in lids.tolist() and prob >= thr
            probs = recompute(env, r, pos, lids, cfg.normalize, excl, masked=masked)
            k = lids.tolist().index(new)
            assert math.isclose(prob, float(probs[k]), rel_tol=1e-4, abs_tol=1e-7)
            assert int(probs.argmax()) == k
        if not cfg.synonyms:
            assert all(s[4] != SYNONYM_TAG for s in r["substitutions"])


def test_threshold_above_one_switches_nothing(env: Env) -> None:
    cfg = CodeSwitchConfig(normalize="target", threshold=1.0 + 1e-6, synonyms=True, synonym_threshold=1.5,
                           assignment="each")
    recs = code_switch(env.model, env.tok, env.pairs[:8], env.vocabs, cfg, progress=False)
    assert n_subs(recs) == 0 and all(r["cs_input_ids"] == r["input_ids"] for r in recs)


def test_synonym_mode(env: Env) -> None:
    pairs = env.pairs[:8]
    off = CodeSwitchConfig(normalize="target", threshold=0.0, languages=("fr",), max_ratio=1.0)
    assert all(s[4] == "fr" for r in code_switch(env.model, env.tok, pairs, env.vocabs, off,
                                                 progress=False) for s in r["substitutions"])
    # target switching disabled, synonyms on: only English-set substitutes, never the original
    on = CodeSwitchConfig(normalize="target", threshold=2.0, languages=("fr",), max_ratio=1.0, synonyms=True,
                          synonym_threshold=0.003)
    recs = code_switch(env.model, env.tok, pairs, env.vocabs, on, progress=False)
    en = set(env.vocabs.ids("en").tolist())
    subs = [s for r in recs for s in r["substitutions"]]
    assert subs and all(s[4] == SYNONYM_TAG and s[2] in en and s[2] != s[1] and s[3] >= 0.003
                        for s in subs)
    same(recs, code_switch_reference(env.model, env.tok, pairs, env.vocabs, on))


def test_config_errors(env: Env) -> None:
    for bad, msg in [({"normalize": "softmax"}, "normalize"), ({"max_ratio": 1.5}, "max_ratio"),
                     ({"languages": ("xx",)}, "no target vocabulary for 'xx'"),
                     ({"assignment": "each", "copies": 2}, "copies"),
                     ({"multi_mask_stride": 0}, "multi_mask_stride"),
                     ({"input": "masks"}, r"input: 'masks'; use one of \('masked', 'unmasked'\)"),
                     ({"input": "unmasked", "multi_mask_stride": 2}, "multi_mask_stride")]:
        with pytest.raises(CodeSwitchError, match=msg):
            code_switch(env.model, env.tok, env.pairs[:1], env.vocabs, CodeSwitchConfig(**bad),
                        progress=False)
    dup = [env.pairs[0], env.pairs[0]]
    with pytest.raises(CodeSwitchError, match="duplicate uid"):
        code_switch(env.model, env.tok, dup, env.vocabs, progress=False)


# ----------------------------------------------------------------------------- files


class Stop(Exception):
    pass


def test_resume_gives_the_uninterrupted_file(env: Env, tmp_path: Path) -> None:
    cfg = CodeSwitchConfig(normalize="target", threshold=0.0031, languages=("fr", "de"), copies=2,
                           max_ratio=0.5)
    pairs = env.pairs[:17]
    full = tmp_path / "full.jsonl"
    whole = code_switch(env.model, env.tok, pairs, env.vocabs, cfg, out_path=full, chunk_size=5,
                        progress=False)
    part = tmp_path / "part.jsonl"

    def stop(k: int, done: int) -> None:
        if k == 1:
            raise Stop

    with pytest.raises(Stop):
        code_switch(env.model, env.tok, pairs, env.vocabs, cfg, out_path=part, chunk_size=5,
                    progress=False, on_chunk=stop)
    assert len(read_jsonl(part)) == 2 * 10  # two chunks of five examples, two copies each
    # a torn write: half a record at the end is cut off and redone
    with open(part, "a", encoding="utf-8") as f:
        f.write('{"uid": "xnli/dev-en:1011", "copy"')
    resumed = code_switch(env.model, env.tok, pairs, env.vocabs, cfg, out_path=part,
                          chunk_size=5, progress=False)
    assert part.read_bytes() == full.read_bytes()
    assert key(resumed) == key(whole) and n_subs(whole) > 0
    meta = json.loads(meta_path(part).read_text())
    assert meta["config"]["threshold"] == 0.0031
    assert meta["input"] == meta["config"]["input"] == "masked"
    # running again changes nothing; a different configuration is refused
    code_switch(env.model, env.tok, pairs, env.vocabs, cfg, out_path=part, progress=False)
    assert part.read_bytes() == full.read_bytes()
    other = replace(cfg, threshold=0.1)
    with pytest.raises(StalePartialOutput, match="different 'config'"):
        code_switch(env.model, env.tok, pairs, env.vocabs, other, out_path=part, progress=False)
    with pytest.raises(StalePartialOutput,
                       match="different 'input' \\('masked' vs now 'unmasked'\\)"):
        code_switch(env.model, env.tok, pairs, env.vocabs, replace(cfg, input="unmasked"),
                    out_path=part, progress=False)
    # a sidecar from before the input mode (no "input" anywhere) was masked: it still resumes
    del meta["input"], meta["config"]["input"]
    meta_path(part).write_text(json.dumps(meta))
    code_switch(env.model, env.tok, pairs, env.vocabs, cfg, out_path=part, progress=False)
    assert part.read_bytes() == full.read_bytes()
    with pytest.raises(StalePartialOutput, match="different 'input'"):
        code_switch(env.model, env.tok, pairs, env.vocabs, replace(cfg, input="unmasked"),
                    out_path=part, progress=False)


def test_runtime_is_recorded_and_typed_records(env: Env, tmp_path: Path) -> None:
    """An explicit runtime's precision goes into the sidecar (a partial file from another
    precision is stale); substitutions come back as typed records, in memory and from disk."""
    cfg = CodeSwitchConfig(normalize="target", threshold=0.0031, languages=("fr",), max_ratio=1.0)
    out = tmp_path / "cs.jsonl"
    recs = code_switch(env.model, env.tok, env.pairs[:6], env.vocabs, cfg, out_path=out,
                       progress=False, runtime=FP32)
    meta = json.loads(meta_path(out).read_text())
    assert meta["precision"] == "fp32"
    assert str(tmp_path) not in meta_path(out).read_text() and "/" not in meta["model"]
    other_head = copy.deepcopy(env.model)
    with torch.no_grad():
        other_head.get_output_embeddings().bias.add_(1e-3)
    with pytest.raises(StalePartialOutput, match="different 'model'"):
        code_switch(other_head, env.tok, env.pairs[:6], env.vocabs, cfg, out_path=out,
                    progress=False, runtime=FP32)
    subs = [s for r in recs for s in r["substitutions"]]
    assert subs and all(isinstance(s, Substitution) and s.tag == "fr" for s in subs)
    other = replace(FP32, precision="bf16")
    with pytest.raises(StalePartialOutput, match="different 'precision'"):
        code_switch(env.model, env.tok, env.pairs[:6], env.vocabs, cfg, out_path=out,
                    progress=False, runtime=other)
    with pytest.raises(CodeSwitchError) as err:  # other errors are not "stale"
        code_switch(env.model, env.tok, env.pairs[:6], env.vocabs,
                    replace(cfg, threshold=float("nan")), out_path=out, progress=False)
    assert not isinstance(err.value, StalePartialOutput)


def test_input_mode_for(tmp_path: Path) -> None:
    from salt.mlm_head import REPORT_FILE

    assert input_mode_for(tmp_path) == "masked"  # no mlm_head.json: a model's own head
    report = tmp_path / REPORT_FILE
    for content, want in [({"trained": True}, "masked"), ({"input": "masked"}, "masked"),
                          ({"input": "unmasked", "config": {"objective": "prototype"}},
                           "unmasked")]:
        report.write_text(json.dumps(content))
        assert input_mode_for(str(tmp_path)) == want
    for text, msg in [('{"input": "both"}', "'both'; expected one of"),
                      ("{oops", "not valid JSON"), ("[1]", "expected a JSON object")]:
        report.write_text(text)
        with pytest.raises(CodeSwitchError, match=msg):
            input_mode_for(tmp_path)


def test_jsonl_roundtrip_and_errors(env: Env, tmp_path: Path) -> None:
    cfg = CodeSwitchConfig(normalize="target", threshold=0.0, languages=("fr",))
    recs = code_switch(env.model, env.tok, env.pairs[:3], env.vocabs, cfg, progress=False)
    path = write_jsonl(recs, tmp_path / "r.jsonl")
    assert read_jsonl(path) == recs
    lines = path.read_text().splitlines()
    cases = {
        "not valid JSON": "{oops",
        "missing key": json.dumps({"uid": "u"}),
        "disagrees with the id lists": json.dumps(
            {**recs[0], "substitutions": [[recs[0]["candidates"][0], -1, -2, 0.5, "fr"]]}),
        "without a substitution": json.dumps({**recs[0], "substitutions": []}),
    }
    for msg, bad in cases.items():
        p = tmp_path / "bad.jsonl"
        p.write_text("\n".join([lines[0], bad, lines[2]]) + "\n")
        with pytest.raises(CodeSwitchError, match=rf"bad\.jsonl:2: .*{msg}"):
            read_jsonl(p)
    with pytest.raises(CodeSwitchError, match="no such records file"):
        read_jsonl(tmp_path / "none.jsonl")


# ----------------------------------------------------------------------------- statistics


@pytest.fixture()
def hand(tmp_path: Path):
    """A hand-written WordPiece vocabulary and MUSE file for hand-computed statistics."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "house", "red", ",",
             "le", "chat", "maison", "Le", "rouge", "##s", "nyumba"]
    # transformers 5 takes the vocabulary as a dict (a vocab_file argument is silently ignored)
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=False)
    muse = tmp_path / "muse"
    muse.mkdir()
    (muse / "en-fr.dict").write_text("le @ the\nla @ the\nchat @ cat\nmaison\thouse\n")
    return tok, muse, {w: i for i, w in enumerate(words)}


def rec(v: dict, lang: str, words: list[str], subs: list[tuple[int, str, float, str]],
        cands: list[int]) -> dict:
    ids = [v[w] for w in words]
    cs = list(ids)
    out = []
    for p, new, prob, tag in subs:
        cs[p] = v[new]
        out.append([p, ids[p], v[new], prob, tag])
    return {"uid": f"u{len(words)}{lang}{len(subs)}", "copy": 0, "lang": lang, "input_ids": ids,
            "cs_input_ids": cs, "token_type_ids": None, "label": 0, "candidates": cands,
            "substitutions": out}


def test_stats_hand_computed(hand) -> None:
    tok, muse, v = hand
    # 6 non-special tokens, candidates 1, 2, 3, 5, 6
    s = ["[CLS]", "the", "red", "cat", ",", "the", "house", "[SEP]"]
    recs = [
        rec(v, "fr", s, [(1, "Le", 0.95, "fr"), (3, "chat", 0.5, "fr"), (6, "rouge", 0.31, "fr")],
            [1, 2, 3, 5, 6]),
        rec(v, "fr", s, [(5, "le", 0.05, "fr"), (2, "house", 0.7, SYNONYM_TAG)], [1, 2, 3, 5, 6]),
        rec(v, "fr", s, [], [1, 2, 3, 5, 6]),
        rec(v, "sw", s, [(6, "nyumba", 1.0, "sw")], [1, 2, 3, 5, 6]),
    ]
    out = codeswitch_stats(recs, tok, muse_dir=muse)["per_language"]
    fr = out["fr"]
    assert (fr["records"], fr["candidates"], fr["tokens"], fr["substitutions"]) == (3, 15, 18, 4)
    assert fr["pairs_with_substitution"] == 2
    assert fr["rate_per_candidate"] == pytest.approx(4 / 15)
    assert fr["rate_per_token"] == pytest.approx(4 / 18)
    assert fr["probability_histogram"]["counts"] == [1, 0, 0, 1, 0, 1, 0, 0, 0, 1]
    assert sorted(map(tuple, fr["top_pairs"])) == [
        ("cat", "chat", 1), ("house", "rouge", 1), ("the", "Le", 1), ("the", "le", 1)]
    d = fr["dictionary"]
    # the->Le (case folded) and cat->chat and the->le are translations; house->rouge is not
    assert (d["translations"], d["substitutions"]) == (3, 4)
    assert d["share"] == pytest.approx(0.75) and d["source_in_dictionary"] == pytest.approx(1.0)
    assert out["sw"]["dictionary"] == "no dictionary"
    assert out["sw"]["probability_histogram"]["counts"][-1] == 1
    syn = out[SYNONYM_TAG]
    assert (syn["records"], syn["substitutions"], syn["dictionary"]) == (4, 1, "not applicable")
    assert syn["top_pairs"] == [["red", "house", 1]]
    assert codeswitch_stats(recs, tok)["per_language"]["fr"]["dictionary"] == "not run"


def test_stats_by_type_content_cap_leak_and_arm(hand) -> None:
    """Precision by type differs from the token-weighted share when a pair repeats; content
    words leave out the most frequent English candidate words; the cap share counts records
    whose proposals exceeded their substitutions; the leak rate counts ids of other sets."""
    from salt.vocab import LanguageVocabs, VocabRule

    tok, muse, v = hand
    s = ["[CLS]", "the", "red", "cat", ",", "the", "house", "[SEP]"]
    a = rec(v, "fr", s, [(1, "Le", 0.9, "fr"), (3, "chat", 0.5, "fr"), (6, "rouge", 0.4, "fr")],
            [1, 2, 3, 5, 6])
    b = rec(v, "fr", [*s[:4], "[SEP]"], [(3, "chat", 0.6, "fr")], [1, 2, 3])
    a["proposals"], b["proposals"] = 5, 1
    vocabs = LanguageVocabs("en", VocabRule(), {
        "en": {v["the"]: ("the", 1, 1, 1)},
        "fr": {v[w]: (w, 1, 0, 1) for w in ("Le", "chat", "rouge", "le")},
        "sw": {v[w]: (w, 1, 0, 1) for w in ("nyumba", "chat")}})
    out = codeswitch_stats([a, b], tok, muse_dir=muse, vocabs=vocabs, input_mode="unmasked",
                           function_top_k=1)
    fr = out["per_language"]["fr"]
    d = fr["dictionary"]
    # pairs: the->Le, cat->chat (twice), house->rouge; translations: the->Le, cat->chat
    assert d["share"] == pytest.approx(3 / 4) and d["precision_by_type"] == pytest.approx(2 / 3)
    # "the" is the most frequent candidate word: content pairs cat->chat (x2), house->rouge
    assert d["content_words"]["share"] == pytest.approx(2 / 3)
    assert d["content_words"]["precision_by_type"] == pytest.approx(1 / 2)
    assert fr["cap_bound_share"] == pytest.approx(1 / 2)
    assert fr["set_size"] == 4 and fr["leak_rate"] == pytest.approx(2 / 4)  # chat is in sw
    assert out["arm"] == "prototype-lexicon code-switching + mixup"
    assert codeswitch_stats([a], tok, input_mode="masked")["arm"].startswith("MLM-head")
    with pytest.raises(CodeSwitchError, match="input mode"):
        codeswitch_stats([a], tok, input_mode="prototype")


def test_muse_format(tmp_path: Path) -> None:
    real = DATA / "muse" / "en-fr.dict"
    pairs = read_muse(real)
    assert ("le", "the") in pairs and ("chat", "cat") in pairs
    bad = tmp_path / "en-xx.dict"
    bad.write_text("le @ the\nonly-one-column\n")
    with pytest.raises(CodeSwitchError, match=r"en-xx\.dict:2: expected"):
        read_muse(bad)


def test_full_normalisation_is_default_and_renormalised_recorded(env: Env) -> None:
    """The default threshold reads the full-vocabulary probability; each record keeps the
    target-renormalised probability beside every substitution (= the full one divided by the
    set's full-vocabulary mass, so never smaller) and how many proposals the cap saw."""
    assert CodeSwitchConfig().normalize == "full"
    pairs = env.pairs[:6]
    full = code_switch(env.model, env.tok, pairs, env.vocabs,
                       CodeSwitchConfig(threshold=0.0005, languages=("fr",), max_ratio=0.3),
                       progress=False)
    target = code_switch(env.model, env.tok, pairs, env.vocabs,
                         CodeSwitchConfig(threshold=0.0, normalize="target", languages=("fr",),
                                          max_ratio=1.0), progress=False)
    renorm = {(r["uid"], s.position): (s.new_id, s.probability)
              for r in target for s in r["substitutions"]}
    seen = 0
    for r in full:
        assert len(r["renormalised"]) == len(r["substitutions"]) <= r["proposals"]
        for s, q in zip(r["substitutions"], r["renormalised"], strict=True):
            assert q >= s.probability
            new, p_target = renorm[(r["uid"], s.position)]
            assert new == s.new_id and q == pytest.approx(p_target, rel=1e-4)
            seen += 1
    assert seen > 0
    capped = [r for r in full if r["proposals"] > len(r["substitutions"])]
    assert capped, "max_ratio 0.3 with a low threshold should bind somewhere"
    for r in target:
        assert [s.probability for s in r["substitutions"]] == pytest.approx(r["renormalised"])
