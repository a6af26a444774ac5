"""Caption foils for probes on real test sets (ARO, Yuksekgonul et al. ICLR 2023; Winoground).

Each rule makes a minimally edited copy of a caption, deterministically and without a parser:

- ``nouns``: swap the first two different nouns ("a dog chasing a cat" -> "a cat chasing a dog").
  A noun is the last word of a phrase that starts after a determiner and runs until a
  preposition, conjunction, verb-like word (``-ing``, is/are, a list of frequent caption verbs)
  or punctuation. It is a heuristic: it can mistake a rarer verb for a noun.
- ``spatial``: swap the first spatial word with its opposite (left/right, above/below, on/under,
  top/bottom, inside/outside, up/down).
- ``shuffle``: shuffle the word order with a generator seeded by the caption's hash.

A rule that does not apply to a caption (no two nouns, no spatial word, one word) makes no foil;
the probe reports the fraction of captions each rule could foil.
"""

from __future__ import annotations

import hashlib

import numpy as np

KINDS = ("nouns", "spatial", "shuffle")
DETERMINERS = {"a", "an", "the", "two", "three", "four", "five", "some", "several", "many", "his", "her", "their", "its",
               "another", "one", "this", "that", "these", "those", "my", "your", "our"}
PHRASE_END = {"in", "on", "at", "of", "with", "and", "or", "while", "near", "next", "to", "by", "from", "under", "above",
              "below", "behind", "beside", "left", "right", "is", "are", "was", "were", "has", "have", "that", "who",
              "which", "as", "for", "into", "onto", "over", "through", "down", "up", "across", "along", "around", "top",
              "bottom", "inside", "outside", "a", "an", "the"}
# Frequent caption verbs (Flickr30K / COCO): a noun phrase ends before them.
VERBS = {"sit", "sits", "stand", "stands", "walk", "walks", "run", "runs", "hold", "holds", "play", "plays", "look", "looks",
         "ride", "rides", "jump", "jumps", "lay", "lays", "lie", "lies", "sleep", "sleeps", "eat", "eats", "drink", "drinks",
         "climb", "climbs", "swim", "swims", "throw", "throws", "catch", "catches", "carry", "carries", "wait", "waits",
         "watch", "watches", "work", "works", "read", "reads", "talk", "talks", "smile", "smiles", "pose", "poses",
         "wear", "wears", "hit", "hits", "kick", "kicks", "sing", "sings", "dance", "dances", "cross", "crosses"}
OPPOSITES = {"left": "right", "above": "below", "on": "under", "top": "bottom", "inside": "outside", "up": "down"}
OPPOSITES |= {b: a for a, b in OPPOSITES.items()}


def _bare(word: str) -> str:
    return word.lower().strip(".,;:!?\"'")


def nouns(words: list[str]) -> list[int]:
    """Indices of the head nouns found by the determiner-phrase rule."""
    found, i = [], 0
    while i < len(words):
        if _bare(words[i]) in DETERMINERS:
            j = i + 1
            while j < len(words) and _bare(words[j]).isalpha() and _bare(words[j]) not in PHRASE_END | VERBS \
                    and not _bare(words[j]).endswith("ing") and not words[j - 1].endswith((",", ".")):
                j += 1
            if j > i + 1:
                found.append(j - 1)
            i = j
        else:
            i += 1
    return found


def swap_nouns(caption: str) -> str | None:
    words = caption.split()
    heads = nouns(words)
    for second in heads[1:]:
        if _bare(words[second]) != _bare(words[heads[0]]):
            words[heads[0]], words[second] = words[second], words[heads[0]]
            return " ".join(words)
    return None


def swap_spatial(caption: str) -> str | None:
    words = caption.split()
    for i, word in enumerate(words):
        bare = _bare(word)
        if bare in OPPOSITES:
            words[i] = word.lower().replace(bare, OPPOSITES[bare])
            return " ".join(words)
    return None


def shuffle_words(caption: str) -> str | None:
    words = caption.split()
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(caption.encode()).digest()[:8], "little"))
    for _ in range(10):
        shuffled = [words[i] for i in rng.permutation(len(words))]
        if shuffled != words:
            return " ".join(shuffled)
    return None


RULES = {"nouns": swap_nouns, "spatial": swap_spatial, "shuffle": shuffle_words}


def make_foils(captions: list[str]) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per rule: the indices of the captions it foiled, and their foils."""
    out = {}
    for kind, rule in RULES.items():
        pairs = [(i, foil) for i, caption in enumerate(captions) if (foil := rule(caption)) is not None]
        out[kind] = (np.array([i for i, _ in pairs], dtype=np.int64), [foil for _, foil in pairs])
    return out
