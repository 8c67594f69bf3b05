"""The vectorized helpers the engine's speed rests on give what the plain pandas expression gives."""
import numpy as np
import pandas as pd

from ccmlib.engine.facts import natural_key
from ccmlib.engine.periods import key_to_label
from ccmlib.intake.fastops import join_groups


def _slow_natural_key(ids: pd.Series) -> pd.Series:
    return ids.astype("string").str.replace(r"\d+", lambda m: m.group(0).lstrip("0").zfill(24), regex=True)


def test_natural_key_matches_the_regular_expression_on_every_shape():
    ids = pd.Series(["C10", "C9", None, "C0009", "x1y22", "x1y3", "", "abc", "7", "C-10", "é12", "C10", "T00"],
                    index=range(100, 113))
    got = natural_key(ids)
    assert got.index.equals(ids.index)
    assert got.tolist() == _slow_natural_key(ids).tolist()
    order = sorted(["C10", "C9", "C100", "C011"], key=lambda v: natural_key(pd.Series([v]))[0])
    assert order == ["C9", "C10", "C011", "C100"]
    assert natural_key(pd.Series([], dtype="string")).tolist() == []


def test_natural_key_of_a_categorical_is_that_of_its_text():
    """build_facts keys claim ids encoded as categoricals: from their categories, the same column as from the text
    (values, missing values, dtype and Arrow type); a few rows of many categories key only their own values."""
    text = pd.Series(["C10", "C9", None, "C0009", "x1y22", "", "é12", "C10", "C9", "x1y22", "T00", None], index=range(5, 17))
    cat = text.astype("category")
    want = natural_key(text)
    for ids in (cat, cat.iloc[:3], cat.iloc[1:2]):
        got = natural_key(ids)
        pd.testing.assert_series_equal(got, want.loc[ids.index], check_exact=True)
        assert got.dtype == want.dtype and got.array._pa_array.type == want.array._pa_array.type
        assert got.tolist() == _slow_natural_key(text.loc[ids.index]).tolist()


def test_join_groups_equals_groupby_join():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.choice(["p1", "p2", "p10"], 200), "b": rng.integers(0, 4, 200),
                       "v": rng.choice(["TIME-06", "CONS-01", "CP-01"], 200)})
    want = df.groupby(["a", "b"])["v"].agg(";".join)
    got = join_groups(df, ["a", "b"], "v", ";")
    assert got.index.equals(want.index) and got.tolist() == want.tolist()
    one = join_groups(df, ["a"], "v", ", ")
    assert one.to_dict() == df.groupby("a")["v"].agg(", ".join).to_dict()
    assert join_groups(df.iloc[:0], ["a"], "v", ";").empty


def test_month_labels():
    assert key_to_label([2026 * 12, 2026 * 12 + 11, 2026 * 12]).tolist() == ["2026-01", "2026-12", "2026-01"]
    assert key_to_label([]).tolist() == []


def test_output_csv_is_what_pandas_writes():
    from ccmlib.engine.pipeline import _csv, _csv_pandas

    df = pd.DataFrame({
        "text": pd.Series(['plain', 'a, b', 'say "hi"', "two\nlines", None, ""], dtype="string"),
        "obj": ["x", None, "y,z", "w", "v", "u"],
        "num": [42.5, -0.0, float("nan"), 1e-05, 66.13, 0.0],
        "money": [42.5, 42.5, float("nan"), 0.1 + 0.2, 12345678.9, 0.0],
        "n": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
        "k": [1, 2, 3, 4, 5, 6],
        "flag": [True, False, True, True, False, True],
        "day": pd.to_datetime(["2026-01-31", None, "2026-01-31", "2025-12-01", "2026-02-28", None]),
    })
    assert _csv(df) == _csv_pandas(df)
    assert _csv(df.iloc[:0]) == _csv_pandas(df.iloc[:0])
    odd = pd.DataFrame({"mixed": [1, "a", None]})  # not text: pandas writes it
    assert _csv(odd) == _csv_pandas(odd)


def test_distinct_rows_groups_equal_combinations_and_points_at_their_first_row():
    from ccmlib.intake.fastops import distinct_rows

    rng = np.random.default_rng(5)
    n = 500
    df = pd.DataFrame({"p": pd.Categorical(rng.choice(["P1", "P2", "P10", None], n)),
                       "d": pd.to_datetime(rng.choice(["2026-01-01", "2026-01-02", None], n)),
                       "npi": pd.Series(rng.choice(["111", "222", None], n), dtype=object)})
    df.loc[df["npi"].isna(), "npi"] = pd.NA
    group, first = distinct_rows(df["p"], df["d"], df["npi"])
    # the same combination (missing values equal to each other) <=> the same group
    want = df.astype(str).groupby(["p", "d", "npi"], sort=False, dropna=False).ngroup().to_numpy()
    assert len(set(zip(group, want))) == len(set(group)) == len(set(want))
    assert (first == pd.Series(np.arange(n)).groupby(group).min().sort_index().to_numpy()).all()
    assert (group[first] == np.arange(len(first))).all()
    # a row-wise function computed on the first rows and spread back equals it computed on every row
    f = lambda x: np.array([repr(t) for t in zip(x["p"].tolist(), x["d"].tolist(), x["npi"].tolist())])  # noqa: E731
    assert (f(df.iloc[first])[group] == f(df)).all()
    g0, f0 = distinct_rows(pd.Series([], dtype="string"))
    assert len(g0) == 0 and len(f0) == 0


def test_distinct_rows_on_integer_codes_equals_it_on_their_text():
    """Integer columns (patient codes with -1 for unknown, month keys, ids over a wide range) take a path without
    hashing: the groups, their numbering by first appearance and the first rows equal those of the same values as text."""
    from ccmlib.intake.fastops import distinct_rows

    rng = np.random.default_rng(11)
    for n in (1, 2, 7, 300):
        cols = [rng.integers(-1, 6, n), rng.integers(24300, 24304, n), rng.integers(0, 10 ** 15, n) // 10 ** 14,
                rng.integers(-(2 ** 62), 2 ** 62, n) // (2 ** 61)]
        for pick in ([0], [0, 1], [1, 2, 3], [3, 0, 2, 1]):
            got_g, got_f = distinct_rows(*[cols[i] for i in pick])
            text = [pd.Series(cols[i]).astype(str) for i in pick]
            want_g, want_f = distinct_rows(*text)
            assert np.array_equal(got_g, want_g) and np.array_equal(got_f, want_f)
            assert got_g.dtype == np.int64 and got_f.dtype == np.int64
            assert (got_f == pd.Series(np.arange(n)).groupby(got_g).min().sort_index().to_numpy()).all()
            # numbered by first appearance, as factorizing the rows' tuples numbers them (dense keys take a path of
            # their own, wide ones are hashed)
            tuples = pd.factorize(pd.Series(list(zip(*[cols[i].tolist() for i in pick])), dtype=object))[0]
            assert np.array_equal(got_g, tuples) and np.array_equal(got_f, np.unique(tuples, return_index=True)[1])
    g, f = distinct_rows(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    assert len(g) == 0 and len(f) == 0


def test_lex_order_is_the_order_of_a_stable_sort_values():
    from ccmlib.intake.fastops import lex_order

    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({"p": pd.Categorical(rng.choice(["P1", "P10", "P2", None], n), categories=["P1", "P10", "P2"]),
                       "m": pd.array(rng.choice([24312, 24313, None], n), dtype="Int64"),
                       "d": pd.to_datetime(rng.choice(["2026-01-02", "2026-01-01", None], n)),
                       "t": pd.Series(rng.choice(["b", "a", "ab", None], n), dtype=pd.StringDtype("pyarrow")),
                       "g": rng.integers(0, 2, n)})
    cols = ["p", "m", "g", "d", "t"]
    want = df.sort_values(cols, kind="mergesort").index.to_numpy()
    assert np.array_equal(lex_order([df[c] for c in cols]), want)
    assert np.array_equal(lex_order([df["t"], df["d"]]), df.sort_values(["t", "d"], kind="mergesort").index.to_numpy())
