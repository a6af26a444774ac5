"""Data: the community "precomp" layout, one loader for real and synthetic data, the vocabulary."""
