"""The vocabulary comes from train captions only and survives a save/load."""

from benchmark.data.vocab import Vocabulary, tokenize


def test_words_outside_train_map_to_unk(tmp_path):
    vocab = Vocabulary.build(["A red dog.", "a blue cat"])
    assert vocab.encode("a red zebra") == [vocab.index["a"], vocab.index["red"], 1]
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").words == vocab.words


def test_min_count_and_tokenizer():
    vocab = Vocabulary.build(["dog dog cat", "dog"], min_count=2)
    assert "cat" not in vocab.index and "dog" in vocab.index
    assert tokenize("A man's hat, left-of 2 dogs!") == ["a", "man's", "hat", "left", "of", "2", "dogs"]
    assert vocab.encode("...") == [1]
