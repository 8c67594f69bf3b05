"""Vectorized lookups that stay in Arrow (no Python string objects on the hot path)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def arrow_text(s) -> pa.Array:
    """A text column (or index, or values) as one Arrow array: pandas' Arrow text as it is (its chunks combined), any
    other values converted (missing values as nulls)."""
    arr = pa.array(s.array if isinstance(s, (pd.Series, pd.Index)) else s, type=pa.string(), from_pandas=True) \
        if not isinstance(getattr(s, "array", None), pd.arrays.ArrowStringArray) else pa.array(s.array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def positions(values: pd.Series, keys, value_set: pa.Array | None = None) -> np.ndarray:
    """Position of each value in ``keys`` (-1 when absent or missing), by an Arrow hash lookup; an Arrow text column is
    looked up in place (its chunks not combined). ``value_set``: ``keys`` already as :func:`arrow_text`, for a caller
    that looks up several columns in the same keys."""
    vs = value_set if value_set is not None else arrow_text(pd.Series(keys, dtype=object))
    return np.asarray(lookup(values, vs).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def lookup(values: pd.Series, value_set: pa.Array):
    """:func:`positions` as Arrow gives them: an int32 array (chunked as the column is), null where absent or missing."""
    a = getattr(values.array, "_pa_array", None) if isinstance(values, pd.Series) else None
    if a is None or not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
        a = arrow_text(values)
    return pc.index_in(a, value_set=value_set if value_set.type == a.type else value_set.cast(a.type))


def join_groups(frame: pd.DataFrame, by: list[str], col: str, sep: str) -> pd.Series:
    """Per group of ``by`` (index sorted by the keys, like ``groupby(by)``), the group's ``col`` values joined with
    ``sep`` in the frame's order: ``groupby(by)[col].agg(sep.join)`` without a Python call per group (an Arrow list
    array cut at the group boundaries, joined by one kernel)."""
    g = frame.groupby(by, sort=True, observed=True)
    index = g.size().index
    if frame.empty:
        return pd.Series([], index=index, dtype=object)
    codes = g.ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    values = arrow_text(frame[col].astype(str)).cast(pa.string()).take(pa.array(order))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(index)))]).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), sep)
    return pd.Series(joined.to_numpy(zero_copy_only=False), index=index, dtype=object)


def _dense_codes(c) -> tuple[np.ndarray, int]:
    """Codes 0..k-1 of one column's values (missing values a value of their own) and k: an integer array without
    missing values is its own code after subtracting its minimum when its range is no wider than twice its length
    (no hashing), anything else is factorized."""
    if isinstance(c, np.ndarray) and c.dtype.kind in "iu" and len(c):
        lo, hi = int(c.min()), int(c.max())
        if hi - lo < 2 * len(c) + 1024:
            return c.astype(np.int64) - lo, hi - lo + 1
    codes, uniq = pd.factorize(c, use_na_sentinel=False)
    return codes.astype(np.int64, copy=False), len(uniq)


def distinct_rows(*cols) -> tuple[np.ndarray, np.ndarray]:
    """(group, first): a group number per row for the distinct combinations of ``cols`` (missing values are a value of
    their own), numbered in the order of their first row, and the position of each group's first row. A row-wise
    function of those columns is then computed once per group, on the rows ``first``, and spread back with
    ``values[group]`` (time entries repeat their patient-month and their day about eight times)."""
    n = len(cols[0])
    combined, size = np.zeros(n, dtype=np.int64), 1
    for c in cols:
        codes, k = _dense_codes(c)
        if size * (k + 1) >= 2 ** 62:  # keep the product small, whatever the number of columns
            combined, uniq = pd.factorize(combined)
            size = len(uniq)
        combined, size = combined * (k + 1) + codes, size * (k + 1)
    if n and size <= 4 * n + 1024:
        # dense keys (a patient code by a month, say): each value's first row by one pass, no hashing
        return _dense_first_rows(combined, size, n)
    group, _ = pd.factorize(combined)
    group = group.astype(np.int64, copy=False)
    if not n:
        return group, np.zeros(0, dtype=np.int64)
    # groups are numbered by first appearance: a row starts its group where its number exceeds every number before it
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.greater(group[1:], np.maximum.accumulate(group)[:-1], out=new[1:])
    return group, np.flatnonzero(new).astype(np.int64)


def _dense_first_rows(combined: np.ndarray, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`distinct_rows` of keys 0..size-1: the first row of each key, the keys numbered in the order of their
    first rows (as factorizing numbers them)."""
    first = np.full(size, n, dtype=np.int64)
    np.minimum.at(first, combined, np.arange(n, dtype=np.int64))
    present = np.flatnonzero(first < n)
    order = np.argsort(first[present], kind="stable")
    number = np.empty(size, dtype=np.int64)
    number[present[order]] = np.arange(len(present), dtype=np.int64)
    return number[combined], first[present[order]]


def sort_codes(s: pd.Series) -> np.ndarray:
    """Integers in the order ``sort_values`` puts ``s`` (missing values last); Arrow text is ranked by Arrow's sort."""
    if isinstance(s.array, pd.arrays.ArrowStringArray):
        arr = pa.array(s.array)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        return pc.rank(arr, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)
    codes, uniq = pd.factorize(s, sort=True)
    return np.where(codes < 0, len(uniq), codes)


def lex_order(cols: list[pd.Series]) -> np.ndarray:
    """Row positions in the order of a stable sort on ``cols`` (the first the major key): the order
    ``sort_values(cols, kind="mergesort")`` gives, found on the columns' integer codes (:func:`sort_codes`)."""
    return np.lexsort([sort_codes(k) for k in reversed(cols)])


def sort_ranks(s: pd.Series, rows: np.ndarray | None = None) -> np.ndarray:
    """Integer ranks of a column's values (of its rows ``rows`` only, when given) in the order ``sort_values`` puts
    them: equal values equal ranks, missing -1. A categorical ranks as the text of its categories (the output tables
    sort their ids as text), computed once per category."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        if pd.api.types.is_string_dtype(cats) and cats.is_monotonic_increasing:  # the facts' ids: already in text order
            cat_rank = np.arange(len(cats))
        else:
            cat_rank, _ = pd.factorize(pd.Series(cats).astype("string"), sort=True)
        codes = s.cat.codes.to_numpy()
        codes = codes if rows is None else codes[rows]
        return np.where(codes < 0, -1, cat_rank[codes] if len(cat_rank) else -1).astype(np.int64)
    values = s if rows is None else s.take(rows)
    return pd.factorize(values, sort=True)[0].astype(np.int64)  # what sort_values does to each key (Categorical codes)
