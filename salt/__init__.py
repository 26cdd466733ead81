"""SALT: self-augmentation for zero-shot cross-lingual transfer.

The method code-switches its own English training data through its MLM head restricted to a
target language (offline) and mixes source and code-switched input embeddings with a random
vector r at every training step (online).
"""

__version__ = "0.1.0"
