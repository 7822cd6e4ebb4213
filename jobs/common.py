"""Steps more than one job uses."""

from __future__ import annotations

import numpy as np

from scaling.data import Part
from scaling.engines import Dataset, Engine


def _labels(part: Part) -> set:
    import pandas as pd

    return set(pd.unique(part.y).tolist())


def _union(a: set, b: set) -> set:
    return a | b


def label_classes(engine: Engine, ds: Dataset) -> np.ndarray:
    """The sorted distinct labels of a labelled dataset: one map-reduce of label sets."""
    return np.array(sorted(engine.map_reduce(ds, _labels, _union)))
