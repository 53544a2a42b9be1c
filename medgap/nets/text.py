"""Report encoders for image–text methods: a word tokenizer + small transformer trained from scratch (default,
offline), or a pretrained Hugging Face encoder from a local folder (e.g. CXR-BERT), never downloaded.

Both return a pooled sentence embedding and one embedding per word (AMVLM: "max 20 tokens"; sub-word pieces of a
word are summed into the word, as the official code does), with a boolean mask of real words. The sentence
embedding is the CLS token (``pooling="cls"``: BERT-style encoders and ours, whose CLS is trained) or the mean of
the real tokens (``"mean"``): sentence-transformer models such as MiniLM are trained for mean pooling and never train
their CLS output (MiniLM's CLS cosine of two LViT reports about different lung zones is 0.96; 0.88 with mean
pooling, issue 19).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from medgap.errors import ConfigError, DatasetError

PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
POOLINGS = ("cls", "mean")


def pool_sentence(hidden: torch.Tensor, real: torch.Tensor, pooling: str) -> torch.Tensor:
    """``hidden (B, L, D)`` token states (CLS first), ``real (B, L)`` bool non-padding → ``(B, D)``: the CLS state
    or the mean over real tokens (CLS/SEP included, as sentence-transformers' mean pooling)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        weights = real.to(hidden.dtype)[..., None]
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
    raise ConfigError(f"text pooling must be one of {POOLINGS}, got {pooling!r}")
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words; punctuation dropped (``"Bilateral pulmonary infection, two"`` → 4 words)."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """A word-level vocabulary: ``[PAD]=0, [UNK]=1, [CLS]=2``, then the corpus words in sorted order.

    ``encode`` gives ``(B, 1 + max_words)`` ids with the CLS id first; words past ``max_words`` are cut.
    """

    def __init__(self, vocabulary: list[str], max_words: int = 20):
        if vocabulary[:3] != [PAD, UNK, CLS]:
            raise ValueError("vocabulary must start with [PAD], [UNK], [CLS]")
        self.vocabulary, self.max_words = list(vocabulary), max_words
        self.index = {word: i for i, word in enumerate(self.vocabulary)}

    @classmethod
    def from_corpus(cls, texts: list[str], max_words: int = 20) -> "WordTokenizer":
        return cls([PAD, UNK, CLS, *sorted({w for text in texts for w in words(text)})], max_words)

    @classmethod
    def from_report_folder(cls, folder: str | Path, max_words: int = 20) -> "WordTokenizer":
        """The vocabulary of every ``CASE.txt`` report in ``folder`` (``textTr``); ``*.alt.txt`` included."""
        paths = sorted(Path(folder).glob("*.txt"))
        if not paths:
            raise DatasetError(f"{folder}: no reports (*.txt) to build the text vocabulary from")
        texts = []
        for path in paths:
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                raise DatasetError(f"{path}: report is not UTF-8 text") from None
        return cls.from_corpus(texts, max_words)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """``texts`` (B strings) → ids ``(B, 1 + max_words)`` int64, CLS first, PAD (0) after the last word."""
        ids = torch.zeros(len(texts), 1 + self.max_words, dtype=torch.long)
        ids[:, 0] = self.index[CLS]
        for row, text in enumerate(texts):
            tokens = [self.index.get(w, 1) for w in words(text or "")][: self.max_words]
            ids[row, 1: 1 + len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return ids


class TextTransformer(nn.Module):
    """Token + position embeddings and a pre-norm transformer encoder; position 0 is the CLS token.

    Args:
        vocabulary_size: tokenizer size; max_words: word positions after CLS; width/depth/heads: size.
    """

    def __init__(self, vocabulary_size: int, max_words: int = 20, width: int = 128, depth: int = 2, heads: int = 4,
                 dropout: float = 0.0):
        super().__init__()
        self.width = width
        self.token_embed = nn.Embedding(vocabulary_size, width, padding_idx=0)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + max_words, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``ids (B, 1 + W)`` → ``cls (B, width)``, ``words (B, W, width)``, ``mask (B, W)`` bool (real words)."""
        padding = ids == 0
        tokens = self.token_embed(ids) + self.pos_embed[:, : ids.shape[1]]
        tokens = self.norm(self.blocks(tokens, src_key_padding_mask=padding))
        return tokens[:, 0], tokens[:, 1:], ~padding[:, 1:]


class TextEncoder(nn.Module):
    """Strings → ``(cls (B, D), words (B, W, D), mask (B, W))`` with the from-scratch tokenizer + transformer."""

    def __init__(self, tokenizer: WordTokenizer, width: int = 128, depth: int = 2, heads: int = 4,
                 pooling: str = "cls"):
        super().__init__()
        self.tokenizer, self.width, self.pooling = tokenizer, width, pooling
        self.transformer = TextTransformer(len(tokenizer), tokenizer.max_words, width, depth, heads)

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = self.tokenizer.encode(texts).to(self.transformer.pos_embed.device)
        cls, word_states, mask = self.transformer(ids)
        if self.pooling == "cls":
            return cls, word_states, mask
        hidden = torch.cat([cls[:, None], word_states], 1)
        return pool_sentence(hidden, torch.cat([torch.ones_like(mask[:, :1]), mask], 1), self.pooling), word_states, mask

    def get_extra_state(self) -> dict:
        """The vocabulary travels in the checkpoint, so a run folder is enough to rebuild the same tokenizer."""
        return {"vocabulary": self.tokenizer.vocabulary, "max_words": self.tokenizer.max_words}

    def set_extra_state(self, state: dict) -> None:
        if state["vocabulary"] != self.tokenizer.vocabulary:
            raise ConfigError("the checkpoint's text vocabulary differs from this data set's reports "
                              "(train and load with the same dataset's textTr)")


class PretrainedTextEncoder(nn.Module):
    """A Hugging Face encoder (BERT-like) loaded from a local folder only (``local_files_only=True``).

    Sub-word pieces are summed into their word (AMVLM's official practice) and at most ``max_words`` words kept.
    Needs the optional ``transformers`` package (``pip install 'medgap[text]'``); nothing is downloaded.
    """

    def __init__(self, folder: str, max_words: int = 20, pooling: str = "cls"):
        super().__init__()
        from medgap.optional import require

        transformers = require("transformers", "method.text_encoder_path (a pretrained report encoder)")
        AutoModel, AutoTokenizer = transformers.AutoModel, transformers.AutoTokenizer
        if not Path(folder, "config.json").is_file():
            raise ConfigError(f"{folder}: not a local Hugging Face model folder (no config.json); nothing is downloaded")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True)
        self.width, self.max_words, self.pooling = int(self.model.config.hidden_size), max_words, pooling

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        encoded = self.tokenizer([" ".join(words(t or "")) for t in texts], return_tensors="pt", padding=True,
                                 truncation=True, max_length=4 * self.max_words + 2)
        hidden = self.model(**{k: v.to(device) for k, v in encoded.items()}).last_hidden_state   # (B, L, D)
        word_states = hidden.new_zeros(len(texts), self.max_words, self.width)
        mask = torch.zeros(len(texts), self.max_words, dtype=torch.bool, device=device)
        for row in range(len(texts)):
            for position, word in enumerate(encoded.word_ids(row)):
                if word is not None and word < self.max_words:
                    word_states[row, word] = word_states[row, word] + hidden[row, position]  # sum sub-words
                    mask[row, word] = True
        return pool_sentence(hidden, encoded["attention_mask"].to(device).bool(), self.pooling), word_states, mask
