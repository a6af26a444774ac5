"""The BiGRU word vocabulary: built from **train** captions only, saved with each run.

(VSE++ once built its vocabulary from test captions too, vsepp issue 29; we never read them.)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from benchmark.errors import UserError

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(caption: str) -> list[str]:
    """Lower-cased words and numbers; punctuation is dropped."""
    return _WORD.findall(caption.lower())


class Vocabulary:
    """Word <-> id. Id 0 is padding, id 1 is unknown."""

    def __init__(self, words: list[str]):
        if words[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def build(cls, captions: list[str], min_count: int = 1) -> Vocabulary:
        """From training captions: words seen at least ``min_count`` times, most frequent first."""
        counts = Counter(word for caption in captions for word in tokenize(caption))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str) -> list[int]:
        """Token ids; an empty caption becomes one <unk> so that every caption has a word."""
        return [self.index.get(word, 1) for word in tokenize(caption)] or [1]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.words), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read vocabulary {path} ({exc}); re-run training to rebuild it") from None
