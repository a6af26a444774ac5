"""Paper names for full combinations of components."""

from variants._registry import ALIASES

ALIASES["dsrln"] = "gisa+dif+hier"  # DSRLN (Wu et al., TMM 2025): GISA + DIF + local and global alignment
