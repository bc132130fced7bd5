"""Random-weight models of real architectures, saved as FlagEmbedding-loadable directories.

For tests and benchmarks with no network: compute cost does not depend on weight values, and
with ``initializer_range=0.5`` the vectors of different texts differ enough for ranking checks.
"""
from __future__ import annotations

import os
import string
from pathlib import Path

WORDS = ("the a of and to in is was for on with as by that this from are be it at or an which were "
         "cell cells protein gene genes cancer risk patients study human blood brain drug virus bacteria "
         "eiffel tower paris python guido photosynthesis light energy password reset account login office "
         "visa river mountain ocean music piano history war king queen city water fire earth star moon sun "
         "model models retrieval search query document passage rank ranking embedding vector index").split()


def _vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    return list(dict.fromkeys(specials + sorted(WORDS) + chars + ["##" + c for c in string.ascii_lowercase + string.digits]))


def _tokenizer(directory: Path, eos: bool):
    from transformers import BertTokenizerFast

    (directory / "vocab.txt").write_text("\n".join(_vocab()) + "\n")
    kwargs = {"eos_token": "[SEP]"} if eos else {}
    return BertTokenizerFast.from_pretrained(str(directory), **kwargs)


def _config(hidden: int, layers: int, heads: int, intermediate: int, vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=intermediate, max_position_embeddings=514, initializer_range=0.5, **extra)


def build(directory: str | os.PathLike, kind: str = "encoder", *, hidden: int = 32, layers: int = 2, heads: int = 2,
          intermediate: int = 64, seed: int = 0) -> str:
    """Write a random BERT ``kind`` ('encoder', 'reranker' or 'm3') to ``directory``; return its path.

    'm3' also writes ``colbert_linear.pt`` and ``sparse_linear.pt`` and an eos token, as bge-m3 has.
    """
    import torch
    from transformers import BertForSequenceClassification, BertModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _tokenizer(directory, eos=kind == "m3")
    config = _config(hidden, layers, heads, intermediate, len(tokenizer))
    if kind == "reranker":
        config.num_labels = 1
        model = BertForSequenceClassification(config)
    elif kind in ("encoder", "m3"):
        model = BertModel(config, add_pooling_layer=False)
    else:
        raise ValueError(f"kind must be encoder, reranker or m3, not {kind!r}")
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    if kind == "m3":
        torch.save(torch.nn.Linear(hidden, hidden).state_dict(), directory / "colbert_linear.pt")
        torch.save(torch.nn.Linear(hidden, 1).state_dict(), directory / "sparse_linear.pt")
    return str(directory)
