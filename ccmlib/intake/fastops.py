"""Vectorized lookups that stay in Arrow (no Python string objects on the hot path)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _arrow_strings(s) -> pa.Array:
    arr = pa.array(s.array if isinstance(s, (pd.Series, pd.Index)) else s, type=pa.string(), from_pandas=True) \
        if not isinstance(getattr(s, "array", None), pd.arrays.ArrowStringArray) else pa.array(s.array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def positions(values: pd.Series, keys) -> np.ndarray:
    """Position of each value in ``keys`` (-1 when absent or missing), by an Arrow hash lookup."""
    found = pc.index_in(_arrow_strings(values), value_set=_arrow_strings(pd.Series(keys, dtype=object)))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
