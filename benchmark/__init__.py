"""itr-bench: a reproducibility and ablation benchmark for region-feature image-text retrieval."""

__version__ = "0.1.0"
