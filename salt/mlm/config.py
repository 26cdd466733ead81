"""Settings, constants and the error type of MLM-head training (see :mod:`salt.mlm`)."""

from __future__ import annotations

from dataclasses import dataclass

REPORT_FILE = "mlm_head.json"
CENTRING_FILE = "mlm_head_centring.pt"
CHECKPOINT_DIR = "checkpoint"
EXCLUDED_BIAS = -1.0e4  # decoder bias of ids outside the kept vocabulary: never the argmax
CENTRE_MODES = ("none", "project", "mean")
# config fields that may change between a run and its resumption (they do not change the math)
RESUMABLE_CHANGES = ("max_steps", "checkpoint_every", "log_every",
                     "eval_sentences", "progress", "keep_checkpoint")


class MLMHeadError(ValueError):
    """Bad configuration, input text or checkpoint; the message says which and why."""


@dataclass(frozen=True)
class MLMHeadConfig:
    """Settings of MLM-head training; every field is recorded in ``mlm_head.json``."""

    languages: tuple[str, ...] | None = None  # None: every language in texts_by_lang
    source_language: str = "en"  # its mean is folded into the saved head when centre="mean"
    encode_sentences: int | None = None  # training sentences encoded (round-robin over
    # languages; None: all): the stage's budget, counted in sentences, never in seconds
    max_steps: int = 1000  # optimizer steps of the masked objective
    batch_size: int = 32  # sentences per step when top layers are adapted
    head_batch_size: int = 512  # masked rows per step when only the head trains
    encode_batch_size: int = 64  # sentences per no-grad forward in the encode phase
    lr: float = 2e-3  # AdamW learning rate of the head (transform + kept decoder bias)
    layer_lr: float = 1e-4  # learning rate of the adapted top encoder layers
    weight_decay: float = 0.01
    warmup_steps: int = 50  # linear warm-up, then constant
    mask_prob: float = 0.15  # share of non-special tokens masked per sentence (at least one)
    train_top_layers: int = 0  # 0: head only; k: also adapt the top k encoder layers
    head_layer: int | None = 6  # the head reads layer min(j, depth) and the saved masked LM
    # keeps only those layers (None: last layer). On e5-small layer 6 beat 12: more lexical,
    # better aligned across languages, and half the encode cost

    objective: str = "masked"  # masked: train a fill-mask head (SALT's definition).
    # prototype: no training; each kept id's decoder row is its mean centred contextual state
    # over its occurrences (unmasked), so the head maps an UNMASKED token to its nearest ids in
    # any language: a dictionary-free translation head whose inputs must not be masked
    prototype_scale: float = 0.1  # prototype head: transform.dense = scale * P (near-linear gelu)
    prototype_temperature: float = 0.05  # prototype head: logit = cosine / temperature
    softmax_scope: str = "language"  # language: softmax over the ids seen in the row's own
    # language (what a restricted code-switcher asks; cheaper); all: over every kept id
    prune_vocab: bool = True  # decoder over ids seen in the training text only
    centre: str = "project"  # none | project | mean (see the module docstring)
    ema_momentum: float = 0.99  # running language means while top layers change (k > 0)
    held_out_fraction: float = 0.1  # sentences (by text hash) kept out for fill-mask accuracy
    max_length: int = 64  # tokens per sentence, specials included
    max_sentences_per_language: int | None = None  # cap on training sentences per language
    seed: int = 0
    checkpoint_every: int = 200  # steps between resumable checkpoints (0: only at the end)
    log_every: int = 20  # steps per point of the loss curve
    eval_sentences: int = 200  # held-out sentences per language for fill-mask accuracy
    save_cache: bool = True  # keep the encode-phase cache in the checkpoint (resume skips it)
    keep_checkpoint: bool = False  # keep out_dir/checkpoint after a finished run (it can be
    # hundreds of MB: the cache); a finished run needs it no more
    progress: bool = True  # tqdm progress bars

    def __post_init__(self) -> None:
        if self.languages is not None:
            object.__setattr__(self, "languages", tuple(self.languages))
        if self.objective not in ("masked", "prototype"):
            raise MLMHeadError(f"objective={self.objective!r}; use 'masked' or 'prototype'")
        if self.softmax_scope not in ("language", "all"):
            raise MLMHeadError(f"softmax_scope={self.softmax_scope!r}; use 'language' or 'all'")
        if self.centre not in CENTRE_MODES:
            raise MLMHeadError(f"centre={self.centre!r}; choose one of {CENTRE_MODES}")
        if not 0.0 < self.mask_prob < 1.0:
            raise MLMHeadError(f"mask_prob={self.mask_prob} must lie in (0, 1)")
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise MLMHeadError(f"held_out_fraction={self.held_out_fraction} must lie in [0, 1)")
        if self.head_layer is not None and self.head_layer < 1:
            raise MLMHeadError(f"head_layer={self.head_layer} must be >= 1 (or None)")
        if self.train_top_layers < 0:
            raise MLMHeadError(f"train_top_layers={self.train_top_layers} must be >= 0")
        if self.max_steps < 1:
            raise MLMHeadError(f"max_steps={self.max_steps} must be >= 1")
        if self.encode_sentences is not None and self.encode_sentences < 1:
            raise MLMHeadError(f"encode_sentences={self.encode_sentences} must be >= 1 "
                               "(or None: all)")
