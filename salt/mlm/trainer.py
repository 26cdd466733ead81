"""The MLM-head trainer: prepare (model cut at the head layer, text, kept vocabulary, cache),
train for ``max_steps`` (resumable), export the masked LM with the trained head."""

from __future__ import annotations

import copy
import os
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModelForMaskedLM, PreTrainedModel, PreTrainedTokenizerBase

from salt.mlm.cache import Encoder, budgeted_order, interleaved
from salt.mlm.centring import Centring
from salt.mlm.config import (
    CHECKPOINT_DIR,
    EXCLUDED_BIAS,
    RESUMABLE_CHANGES,
    MLMHeadConfig,
    MLMHeadError,
)
from salt.mlm.layers import bert_parts
from salt.mlm.objective import HeadObjective, StepData, exact_means
from salt.mlm.prototype import make_prototype_head
from salt.mlm.text import digest, split_held_out
from salt.mlm.vocabulary import KeptVocabulary, kept_vocabulary
from salt.runtime import Runtime, decide
from salt.vocab import special_ids


def tokenised_training_text(tokenizer: PreTrainedTokenizerBase, train: Mapping[str, list[str]],
                            languages: Sequence[str], cfg: MLMHeadConfig
                            ) -> dict[str, list[list[int]]]:
    """Per language: its training sentences shuffled (seeded), capped, tokenised."""
    rng = random.Random(cfg.seed)
    out = {}
    for lang in languages:
        sents = list(train[lang])
        rng.shuffle(sents)
        if cfg.max_sentences_per_language:
            sents = sents[: cfg.max_sentences_per_language]
        out[lang] = tokenizer(sents, truncation=True, max_length=cfg.max_length)["input_ids"]
    return out


def _check_languages(cfg: MLMHeadConfig, texts_by_lang: Mapping[str, Sequence[str]]
                     ) -> list[str]:
    langs = list(cfg.languages or tuple(texts_by_lang))
    missing = [lang for lang in langs if not texts_by_lang.get(lang)]
    if missing:
        raise MLMHeadError(f"no text for language(s) {missing}")
    if len(set(langs)) != len(langs):
        raise MLMHeadError(f"duplicate language in {langs}")
    if cfg.centre == "mean" and cfg.source_language not in langs:
        raise MLMHeadError(f"centre='mean' needs the source language {cfg.source_language!r} "
                           "among the languages")
    return langs


class MLMHeadTrainer:
    """Encode-once, then train the head (and top layers) for ``max_steps``; resumable.

    ``prepare()`` loads the model, splits and tokenises the text, picks the kept vocabulary
    and fills (or reloads) the cache; ``train()`` runs the steps; ``export()`` returns the
    model with the trained head, centring folded in and excluded ids' bias set very negative.
    """

    def __init__(self, model_dir: str | Path, texts_by_lang: Mapping[str, Sequence[str]],
                 out_dir: str | Path, config: MLMHeadConfig | None = None,
                 on_step: Callable[[int, float], None] | None = None,
                 runtime: Runtime | None = None):
        self.cfg = config or MLMHeadConfig()
        self.model_dir = Path(model_dir)
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / CHECKPOINT_DIR
        self.on_step = on_step
        self.runtime = runtime or decide()
        self.languages = _check_languages(self.cfg, texts_by_lang)
        self.texts = {lang: list(texts_by_lang[lang]) for lang in self.languages}
        self.centring = Centring(self.cfg.centre, self.languages, self.cfg.source_language)
        self.step = 0
        self.losses: list[list[float]] = []
        self.resumed_from: int | None = None

    # -- keys that guard the cache and the checkpoint against a changed setup
    def _data_key(self) -> str:
        keep = ("objective", "languages", "mask_prob", "seed", "max_length", "train_top_layers",
                "head_layer", "held_out_fraction", "prune_vocab", "max_sentences_per_language",
                "encode_sentences")
        cfg = {k: v for k, v in asdict(self.cfg).items() if k in keep}
        return digest({"cfg": cfg, "languages": self.languages,
                       "precision": self.runtime.precision,
                       "model": str(self.model_dir.resolve()), "texts": digest(self.texts)})

    def _resume_key(self) -> str:
        cfg = {k: v for k, v in asdict(self.cfg).items() if k not in RESUMABLE_CHANGES}
        return digest({"cfg": cfg, "data": self._data_key()})

    @property
    def kept(self) -> torch.Tensor:
        """(K,) the ids the head scores."""
        return self.vocab.kept

    def head_logits(self, rows: torch.Tensor, lang_idx: torch.Tensor) -> torch.Tensor:
        """Training-time head: (M, H) rows -> (M, K) logits over kept ids."""
        return self.objective.logits(rows, lang_idx)

    # -- preparation
    def _load_model(self) -> None:
        """The masked LM cut at the head layer, frozen, on the runtime's device."""
        from salt.models import load_tokenizer

        cfg = self.cfg
        torch.manual_seed(cfg.seed)  # the e5 head is missing from its folder: seeded init
        self.tokenizer = load_tokenizer(self.model_dir)
        if self.tokenizer.mask_token_id is None:
            raise MLMHeadError(f"{self.model_dir}: the tokenizer has no mask token")
        self.model = AutoModelForMaskedLM.from_pretrained(str(self.model_dir)).eval()
        self.bert, self.head, layers = bert_parts(self.model)
        self.head_layer = len(layers) if cfg.head_layer is None else min(cfg.head_layer,
                                                                          len(layers))
        del layers[self.head_layer:]  # the saved masked LM stops at the head's layer
        self.model.config.num_hidden_layers = self.head_layer
        if cfg.train_top_layers > len(layers):
            raise MLMHeadError(f"train_top_layers={cfg.train_top_layers} but the model has "
                               f"{len(layers)} layers")
        self.split_at = len(layers) - cfg.train_top_layers
        self.top_layers = nn.ModuleList(layers[self.split_at:])
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.runtime.place(self.model)

    def _build_objective(self, encoder: Encoder) -> None:
        """Head objective, optimizer and warm-up schedule (trainable: the head's transform, the
        kept decoder bias, the top layers)."""
        cfg = self.cfg
        emb = self.bert.embeddings.word_embeddings.weight.detach()[self.vocab.kept.to(
            self.runtime.device)]  # (K, H), frozen
        self.objective = HeadObjective(self.head.predictions.transform,
                                       emb.to(encoder.store_dtype), self.vocab, self.centring, cfg)
        for p in [*self.objective.transform.parameters(), *self.top_layers.parameters()]:
            p.requires_grad_(True)
        groups = [{"params": [*self.objective.transform.parameters(), self.objective.bias_kept],
                   "lr": cfg.lr}]
        if cfg.train_top_layers:
            groups.append({"params": list(self.top_layers.parameters()), "lr": cfg.layer_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            [lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps))] * len(groups))

    def prepare(self) -> None:
        cfg = self.cfg
        self._load_model()
        train, self.held_out = split_held_out(self.texts, cfg.held_out_fraction)
        special = special_ids(self.tokenizer)
        self.train_ids = tokenised_training_text(self.tokenizer, train, self.languages, cfg)
        self.vocab: KeptVocabulary = kept_vocabulary(self.train_ids, self.languages, special,
                                                     self.model.config.vocab_size,
                                                     cfg.prune_vocab)
        encoder = Encoder(self.bert, self.split_at, self.train_ids, self.languages, self.vocab,
                          special, self.tokenizer.mask_token_id,
                          self.tokenizer.pad_token_id or 0, cfg, self.runtime)
        self._build_objective(encoder)
        self.cache = self._load_or_encode(encoder)
        self.data = StepData(self.cache, self.bert, self.top_layers, cfg, self.runtime.device)
        self._load_checkpoint()

    def _load_or_encode(self, encoder: Encoder) -> dict[str, Any]:
        path = self.ckpt_dir / "cache.pt"
        key = self._data_key()
        if path.is_file():
            cache = torch.load(path, weights_only=True)
            if cache.get("key") == key:
                return cache
        everything = interleaved(self.train_ids, self.languages)
        order, budget = budgeted_order(everything, self.cfg.encode_sentences)
        if budget["cut_short"]:  # recorded in mlm_head.json too; said here so no one misses it
            warnings.warn(f"mlm: encode_sentences={budget['limit']} cut the training text short: "
                          f"{budget['used']} of {len(everything)} sentences encoded",
                          stacklevel=2)
        if self.cfg.objective == "prototype":
            cache = encoder.encode_prototypes(order)
        else:
            cache = encoder.encode_masked(order)
        cache.update(budget=budget, available_sentences=len(everything), key=key)
        if self.cfg.save_cache:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(cache, tmp)
            os.replace(tmp, path)
        return cache

    # -- checkpoints
    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "key": self._resume_key(), "step": self.step,
            "transform": self.objective.transform.state_dict(),
            "bias_kept": self.objective.bias_kept.detach().cpu(),
            "top_layers": self.top_layers.state_dict() if self.cfg.train_top_layers else {},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": torch.get_rng_state(), "losses": self.losses,
            "means": self.centring.means,
        }

    def save_checkpoint(self) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self.ckpt_dir / "state.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(self._checkpoint_state(), tmp)
        os.replace(tmp, path)

    def _load_checkpoint(self) -> None:
        path = self.ckpt_dir / "state.pt"
        if not path.is_file():
            if self.cfg.centre != "none" and self.cfg.objective == "masked":
                self.centring.set_means(exact_means(
                    self.data, len(self.languages), self.model.config.hidden_size,
                    self.runtime.autocast))
            return
        state = torch.load(path, weights_only=True)
        if state["key"] != self._resume_key():
            raise MLMHeadError(f"{path}: checkpoint of a different configuration or data; "
                               f"delete {self.ckpt_dir} to start afresh")
        self.objective.transform.load_state_dict(state["transform"])
        with torch.no_grad():
            self.objective.bias_kept.copy_(state["bias_kept"])
        if self.cfg.train_top_layers:
            self.top_layers.load_state_dict(state["top_layers"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.losses = [list(x) for x in state["losses"]]
        if state["means"] is not None:
            self.centring.set_means(state["means"])
        self.step = self.resumed_from = int(state["step"])

    # -- training
    def _one_step(self) -> float:
        with self.runtime.autocast():
            rows, targets, langs = self.data(self.step)
            self.objective.update_running_means(rows, langs)
            loss = self.objective.loss(rows, targets, langs)
        if not torch.isfinite(loss):
            raise MLMHeadError(f"loss became {float(loss)} at step {self.step}; "
                               "lower lr / layer_lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return loss.item()

    def train(self) -> str:
        """Run steps until ``max_steps``; return what stopped it."""
        cfg = self.cfg
        if cfg.objective == "prototype":
            return "prototype (no training)"
        self.top_layers.train(cfg.train_top_layers > 0)
        self.objective.transform.train()
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="mlm-head train", unit="step",
                   disable=not cfg.progress, mininterval=5)
        window: list[float] = []
        while self.step < cfg.max_steps:
            value = self._one_step()
            window.append(value)
            if len(window) >= cfg.log_every:
                self.losses.append([self.step, sum(window) / len(window)])
                window = []
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
            if self.on_step is not None:
                self.on_step(self.step, value)
        bar.close()
        if window:
            self.losses.append([self.step, sum(window) / len(window)])
        self.save_checkpoint()
        self.top_layers.eval()
        self.objective.transform.eval()
        return "max_steps"

    def export(self) -> PreTrainedModel:
        """A CPU copy of the masked LM with the trained head: centring folded in, the kept ids'
        bias trained and every other id's bias :data:`EXCLUDED_BIAS`."""
        model = copy.deepcopy(self.model).cpu().eval()
        if self.cfg.objective == "prototype":
            self.prototype_ids = make_prototype_head(model, self.cache, self.kept,
                                                     self.languages, self.cfg)
        else:
            _, head, _ = bert_parts(model)
            self.centring.fold_into(head)
            with torch.no_grad():
                bias = torch.full_like(head.predictions.bias, EXCLUDED_BIAS)  # (V,)
                bias[self.kept] = self.objective.bias_kept.detach().cpu().to(bias.dtype)
                head.predictions.bias.copy_(bias)
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def run(self) -> dict[str, Any]:
        """prepare, train, export, save and measure (see :func:`salt.mlm.run.run_trainer`)."""
        from salt.mlm.run import run_trainer

        return run_trainer(self)
