"""The parsed file as a transformers BERT (config, state dict) and a fast tokenizer whose
normaliser applies the file's per-codepoint table."""

from __future__ import annotations

import bisect
import collections
import struct

import numpy as np

from salt.e5.binformat import MASK_PIECE, E5File

_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def bert_key(name: str) -> str:
    """transformers ``BertModel`` state-dict key for a file tensor name (``l3.fi.w`` ...)."""
    if name in _EMB_NAMES:
        return _EMB_NAMES[name]
    layer, part, wb = ([*name.split("."), "", ""])[:3]
    if not (layer[:1] == "l" and layer[1:].isdigit() and part in _LAYER_NAMES
            and wb in ("w", "b") and name.count(".") == 2):
        raise ValueError(f"unknown e5 tensor name {name!r}")
    kind = "weight" if wb == "w" else "bias"
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{kind}"


def bert_config(e5file: E5File):
    """The ``BertConfig`` the file's header describes (multilingual-e5-small's architecture)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=e5file.vocab_rows,
        hidden_size=e5file.hidden,
        num_hidden_layers=e5file.layers,
        num_attention_heads=e5file.heads,
        intermediate_size=e5file.ffn,
        hidden_act="gelu",
        max_position_embeddings=e5file.max_positions,
        type_vocab_size=e5file.type_vocab,
        layer_norm_eps=e5file.layer_norm_eps,
        pad_token_id=e5file.pad_id,
        bos_token_id=e5file.bos_id,
        eos_token_id=e5file.eos_id,
        position_embedding_type="absolute",
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    )


def to_bert_state_dict(e5file: E5File) -> dict:
    """Dequantised ``BertModel`` state dict (float32 torch tensors, no pooler) for the file.

    Shapes come from a ``BertModel`` built on the meta device from :func:`bert_config`; a tensor
    whose value count disagrees, a missing tensor or an unknown one raises ``ValueError`` naming it.
    Matrices are reshaped to ``[out, in]`` as stored (no transpose, see the module docstring).
    """
    import torch
    from transformers import BertModel

    config = bert_config(e5file)
    with torch.device("meta"):
        ref = BertModel(config, add_pooling_layer=False)
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.endswith("_ids")}
    out: dict[str, torch.Tensor] = {}
    for name, t in e5file.tensors.items():
        key = bert_key(name)
        if key not in expected:
            raise ValueError(f"{e5file.path}: tensor {name!r} maps to {key!r}, not in BertModel")
        shape = expected[key]
        if t.count != int(np.prod(shape)):
            raise ValueError(f"{e5file.path}: tensor {name!r} has {t.count} values, "
                             f"{key} of shape {shape} needs {int(np.prod(shape))}")
        out[key] = torch.from_numpy(e5file.tensor(name).reshape(shape))
    missing = sorted(set(expected) - set(out))
    if missing:
        raise ValueError(f"{e5file.path}: no tensor for {missing[:5]} ({len(missing)} missing)")
    return out


def compile_charsmap(norm_map: dict[int, str]) -> bytes:
    """Compile a per-codepoint map into a SentencePiece "precompiled charsmap" blob.

    Layout (what ``normalizers.Precompiled`` reads): uint32 trie size in bytes, a darts-clone
    double-array trie over the UTF-8 keys whose leaf values are offsets into the last part, the
    NUL-terminated replacement strings. Unit bits: 0-7 label, 8 has-leaf, 9 offset scale (x256),
    10-30 offset; leaf value units set bit 31. A node's children sit at ``base ^ label``, its
    value at ``base ^ 0``, and ``base = position ^ offset``; distinct nodes get distinct bases, so
    a label check at a slot can only succeed for the real child.
    """
    # normalised strings, shared between keys mapping to the same text
    strings = bytearray()
    where: dict[str, int] = {}
    trie: dict = {}
    for cp in sorted(norm_map):
        text = norm_map[cp]
        if text not in where:
            where[text] = len(strings)
            strings += text.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = where[text]  # the leaf value

    units = [0] * 256
    used = bytearray(256)  # slot taken
    used[0] = 1  # the root's own unit
    free = list(range(1, 256))  # sorted free slots
    bases: set[int] = set()

    queue = collections.deque([(0, trie)])  # (position, node), breadth first
    while queue:
        pos, node = queue.popleft()
        labels = sorted(0 if k is None else k for k in node)
        # like darts-clone, only look for room in the last few 256-slot blocks
        i = bisect.bisect_left(free, max(0, len(units) - 16 * 256))
        while True:
            if i == len(free):  # no room: open a new block
                free.extend(range(len(units), len(units) + 256))
                units.extend([0] * 256)
                used.extend(bytes(256))
            base = free[i] ^ labels[0]  # same block as free[i], so every child slot exists
            off = pos ^ base
            if (base not in bases and all(base ^ c and not used[base ^ c] for c in labels)
                    and (off < 1 << 21 or (off % 256 == 0 and off < 1 << 29))):
                break
            i += 1
        bases.add(base)
        units[pos] |= (off << 10 if off < 1 << 21 else (off >> 8) << 10 | 1 << 9) | (
            1 << 8 if None in node else 0)
        for c in labels:
            slot = base ^ c
            used[slot] = 1
            del free[bisect.bisect_left(free, slot)]
            if c == 0:
                units[slot] = node[None] | 1 << 31
            else:
                units[slot] = c
                queue.append((slot, node[c]))
    trie_bytes = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(strings)


def build_tokenizer(e5file: E5File):
    """XLM-R's SentencePiece-unigram tokenizer rebuilt from the file, as a transformers tokenizer.

    ``XLMRobertaTokenizer`` (transformers' tokenizers-backed class): Unigram over the 250002
    pieces and scores (unk id 3), ``Precompiled`` normaliser compiled from the file's codepoint
    map, whitespace split + Metaspace pre-tokenizer, ``<s> A </s></s> B </s>`` post-processor;
    ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=250001.
    """
    from tokenizers import AddedToken, normalizers
    from transformers import XLMRobertaTokenizer

    charsmap = compile_charsmap(e5file.norm_map)
    check = normalizers.Precompiled(charsmap)
    for cp, text in e5file.norm_map.items():
        if check.normalize_str(chr(cp)) != text:
            raise ValueError(f"{e5file.path}: compiled charsmap maps U+{cp:04X} to "
                             f"{check.normalize_str(chr(cp))!r}, the table says {text!r}")
    names = {"bos": e5file.bos_id, "pad": e5file.pad_id, "eos": e5file.eos_id,
             "unk": e5file.unk_id, "mask": e5file.mask_id}
    tok = XLMRobertaTokenizer(
        vocab=list(zip(e5file.pieces, e5file.scores.tolist(), strict=True)),
        _spm_precompiled_charsmap=charsmap,
        bos_token=e5file.pieces[e5file.bos_id],
        cls_token=e5file.pieces[e5file.bos_id],
        eos_token=e5file.pieces[e5file.eos_id],
        sep_token=e5file.pieces[e5file.eos_id],
        pad_token=e5file.pieces[e5file.pad_id],
        unk_token=e5file.pieces[e5file.unk_id],
        mask_token=AddedToken(MASK_PIECE, lstrip=True, rstrip=False, special=True),
        model_max_length=e5file.max_positions,
    )
    for key, want in names.items():
        got = getattr(tok, f"{key}_token_id")
        if got != want:
            raise ValueError(f"{e5file.path}: rebuilt tokenizer has {key} id {got}, "
                             f"the file says {want}")
    return tok
