"""Where each dataset's files live: the community "precomp" layout (SCAN, VSE++, vse_infty).

``<root>/<name>_precomp/`` holds, per split:

- ``{split}_ims.npy``: float32 ``(n_images, n_regions, dim)`` region features (BUTD: 36 x 2048).
  Some releases store 5 identical rows per image; that is detected as the field does it: when
  the row count equals the caption count, there are 5 rows per image.
- ``{split}_caps.txt``: one caption per line, 5 consecutive lines per image.
- ``{split}_ids.txt`` (optional): one image id per image.
- boxes (optional; geometry-aware variants need them), either
  ``{split}_ims_bbx.npy`` ``(n_images, n_regions, 4)`` pixel ``[x1, y1, x2, y2]`` with
  ``{split}_ims_size.npy``, a pickled object array of ``{'image_h', 'image_w'}`` dicts (GSMN), or
  ``{split}_boxes.npy`` already normalised to [0, 1].
- ``{split}_grid.npy`` (optional): ``(n_images, G, C)`` grid features, ``G = g*g`` cells in
  row-major order: cell ``r*g + c`` covers rows ``[r/g, (r+1)/g)`` of the image height and columns
  ``[c/g, (c+1)/g)`` of its width, starting top-left (the order of a flattened C5 map).
- ``{split}_twins.npy`` (optional, synthetic): ``(n_groups, 5)`` image indices
  ``[base, layout, binding, context, scene twin]`` (``TWIN_KINDS``) for the diagnostic probes. Only
  the bases enter the retrieval pool; the twins are scored against their base's captions alone.

The synthetic dataset has a fourth split, ``crowded``: twin groups whose images hold as many objects as
the regions allow. Only its binding twins are scored (the ``crowded_binding`` probe); nothing trains on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CAPTIONS_PER_IMAGE = 5
TWIN_KINDS = ("layout", "binding", "context", "scene")  # the columns after the base in a twins file
CROWDED_SPLIT = "crowded"  # synthetic: twin groups among more distractor objects than training shows
CROWDED_PROBE = "crowded_binding"  # the binding twins of the crowded split
PROBE_KINDS = (*TWIN_KINDS, CROWDED_PROBE)  # every twin probe a synthetic run reports
TEST_PREFIX = "test_"  # of every test metric a run logs to MLflow
# The optional inputs a variant may need: what each is called, and which files of a split hold it.
INPUTS = {"boxes": ("boxes", "{split}_boxes.npy (or GSMN's {split}_ims_bbx.npy + {split}_ims_size.npy)"),
          "grid": ("grid features", "{split}_grid.npy")}


@dataclass(frozen=True)
class Benchmark:
    """One way a test split is scored. The only owner of its names: the table title, the prefix of its
    metric names (``test_1k_rsum``) and the keys of its per-query ranks (``1k_fold3_i2t``)."""

    title: str  # column group in report tables
    prefix: str = ""  # of its metric names and ranks keys: "" (one test set), "1k_", "5k_"
    published: str | None = None  # its key in the published results (report/published.csv)
    folds: int = 1  # > 1: the mean over this many equal folds of the split (COCO 1K)

    def key(self, metric: str) -> str:
        """Its name for a metric: ``rsum`` -> ``1k_rsum``."""
        return self.prefix + metric

    def test_key(self, metric: str) -> str:
        """Its name for a test metric as runs log it to MLflow: ``rsum`` -> ``test_1k_rsum``."""
        return TEST_PREFIX + self.key(metric)

    def ranks_keys(self, direction: str) -> list[str]:
        """The keys that hold one direction's per-query ranks, fold by fold."""
        if self.folds == 1:
            return [f"{self.prefix}{direction}"]
        return [f"{self.prefix}fold{k}_{direction}" for k in range(self.folds)]


WHOLE_SPLIT = Benchmark("whole split")  # a split scored as one set (dev, or any split given to `eval`)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's folder, its splits, which split is the test, and how the test is scored."""

    name: str
    splits: tuple[str, ...]
    test_split: str
    benchmarks: tuple[Benchmark, ...]  # the first is the headline (model selection is on the dev score regardless)

    @property
    def folder(self) -> str:
        return f"{self.name}_precomp"

    @property
    def headline(self) -> Benchmark:
        return self.benchmarks[0]


DATASETS = {
    "synthetic": DatasetSpec("synthetic", ("train", "dev", "test", CROWDED_SPLIT), "test", (Benchmark("Synthetic"),)),
    "f30k": DatasetSpec("f30k", ("train", "dev", "test"), "test", (Benchmark("Flickr30K 1K", published="f30k_1k"),)),
    "coco": DatasetSpec("coco", ("train", "dev", "testall"), "testall", (
        Benchmark("COCO 1K", "1k_", "coco_1k", folds=5), Benchmark("COCO 5K", "5k_", "coco_5k"))),
}


def benchmarks(dataset: str) -> tuple[Benchmark, ...]:
    """A dataset's benchmarks; a dataset the suite does not know is one benchmark under its own name."""
    return DATASETS[dataset].benchmarks if dataset in DATASETS else (Benchmark(dataset),)


@dataclass(frozen=True)
class SplitFiles:
    """The paths of one split's files (which of them exist is the loader's business)."""

    folder: Path
    split: str

    def _path(self, suffix: str) -> Path:
        return self.folder / f"{self.split}_{suffix}"

    @property
    def regions(self) -> Path:
        return self._path("ims.npy")

    @property
    def captions(self) -> Path:
        return self._path("caps.txt")

    @property
    def ids(self) -> Path:
        return self._path("ids.txt")

    @property
    def pixel_boxes(self) -> Path:
        return self._path("ims_bbx.npy")

    @property
    def image_sizes(self) -> Path:
        return self._path("ims_size.npy")

    @property
    def boxes(self) -> Path:
        return self._path("boxes.npy")

    @property
    def grid(self) -> Path:
        return self._path("grid.npy")

    @property
    def twins(self) -> Path:
        return self._path("twins.npy")
