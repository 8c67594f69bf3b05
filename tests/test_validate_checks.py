"""The declared value checks and the unique key, run without pandera, give exactly the data-quality rows pandera gave.

The oracle is the former pandera implementation (kept here, verbatim but for names): for each frame the rows, their
order, the column, problem and value text and the action must be equal, so `ccm-audit check` folders stay byte for
byte what they were. pandera is a test-only dependency (the ``test`` extra that `make setup` and CI install).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from ccmlib.intake import sources as io
from ccmlib.intake import validate
from ccmlib.intake.schema import TABLES, Table
from ccmlib.intake.validate import _check_rows, declared_checks, validate_table

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pandera.pandas as pa


# --- the oracle: ccmlib/intake/validate.py before issue #23 ------------------------------------------------------------
def pandera_schemas(table: Table) -> tuple[pa.DataFrameSchema, pa.DataFrameSchema]:
    reject, flag = {}, {}
    for c in table.cols:
        checks = []
        if c.choices:
            checks.append(pa.Check.isin(list(c.choices), error=f"not one of: {', '.join(c.choices)}"))
        if c.min is not None:
            checks.append(pa.Check.ge(c.min, error=f"below the minimum of {c.min:g}"))
        if c.max is not None:
            checks.append(pa.Check.le(c.max, error=f"above the maximum of {c.max:g}"))
        if checks:
            reject[c.name] = pa.Column(checks=checks, nullable=True, required=False)
        if c.flag_above is not None:
            flag[c.name] = pa.Column(checks=[pa.Check.le(c.flag_above, error=f"implausibly large (over {c.flag_above:g}); kept, please verify")],
                                     nullable=True, required=False)
    unique = list(table.key) or None
    return (pa.DataFrameSchema(reject, unique=unique, report_duplicates="exclude_first"),
            pa.DataFrameSchema(flag))


def pandera_run(schema: pa.DataFrameSchema, df: pd.DataFrame, table: Table, action: str) -> pd.DataFrame:
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        fc = fc[fc["index"].notna()]
        is_dup = fc["check"].astype(str).str.contains("uniqueness|unique", regex=True)
        problem = np.where(is_dup, "duplicate " + "+".join(table.key) + " (an earlier row has the same; this one is left out)",
                           fc["check"].astype(str))
        column = np.where(is_dup, "+".join(table.key), fc["column"].astype(str))
        out = pd.DataFrame({"row": fc["index"].astype("int64").to_numpy(), "column": column, "problem": problem,
                            "value": fc["failure_case"].astype("string").to_numpy(), "action": action})
        return out.drop_duplicates(["row", "column", "problem"])
    return pd.DataFrame(columns=["row", "column", "problem", "value", "action"])


def pandera_check_rows(table: Table, df: pd.DataFrame, action: str) -> pd.DataFrame:
    reject, flag = pandera_schemas(table)
    return pandera_run(reject if action == "rejected" else flag, df, table, action)
# -----------------------------------------------------------------------------------------------------------------------


def same(table: Table, df: pd.DataFrame) -> pd.DataFrame:
    """Assert both implementations give the same rows for both actions; the new rejected rows."""
    out = {}
    for action in ("rejected", "flagged"):
        new = _check_rows(table, df, action).reset_index(drop=True)
        old = pandera_check_rows(table, df, action).reset_index(drop=True)
        assert len(new) == len(old), (action, new, old)
        if len(old):
            pd.testing.assert_frame_equal(new, old)
        out[action] = new
    return out["rejected"]


def frame(table: Table, n: int, **cols) -> pd.DataFrame:
    """A typed frame as validate_table builds it before the checks: every column, missing unless given."""
    df = pd.DataFrame({c.name: pd.Series([None] * n, dtype="object") for c in table.cols})
    for name, values in cols.items():
        df[name] = values
    return df


S = pd.StringDtype("pyarrow", na_value=np.nan)  # the typed text columns' dtype ("str")


def test_declared_checks_follow_the_schema():
    checks = declared_checks(TABLES["time_entries"])
    assert [(c.column, c.test, c.bound, c.action) for c in checks] == [
        ("minutes", "ge", 0, "rejected"), ("minutes", "le", 1440, "rejected"), ("minutes", "le", 240, "flagged")]
    staff = declared_checks(TABLES["staff"])
    assert [(c.column, c.test) for c in staff] == [("role", "isin")] and staff[0].problem.startswith("not one of: physician, np")
    claims = declared_checks(TABLES["claims"])
    assert [(c.column, c.test, c.bound) for c in claims] == [("line", "ge", 1), ("units", "ge", 1), ("units", "le", 99),
                                                              ("paid_amount", "ge", 0), ("allowed_amount", "ge", 0)]


def test_range_and_flag_checks_with_nulls():
    t = TABLES["time_entries"]
    minutes = np.array([10, -5, np.nan, 2000, 300, 240, 1440, -0.0, np.inf, -np.inf, 1440.5, 0.1 + 0.2, 1e20, 241])
    df = frame(t, len(minutes), entry_id=pd.Series([f"E{i:02d}" for i in range(len(minutes))], dtype=S), minutes=minutes)
    rej = same(t, df)
    assert list(rej["row"]) == [1, 9, 3, 8, 10, 12]  # all below the minimum, then all above the maximum
    assert list(rej["value"]) == ["-5.0", "-inf", "2000.0", "inf", "1440.5", "1e+20"]
    flag = _check_rows(t, df, "flagged")
    assert 2 not in set(flag["row"]) and 5 not in set(flag["row"]) and 13 in set(flag["row"])  # NaN and 240 pass


def test_choices_with_nulls_and_case():
    t = TABLES["staff"]
    roles = pd.Series(["rn", "boss", None, "RN", "", "np", "boss"], dtype=S)
    df = frame(t, len(roles), staff_id=pd.Series([f"S{i}" for i in range(len(roles))], dtype=S), role=roles)
    rej = same(t, df)
    assert list(rej["row"]) == [1, 3, 4, 6] and set(rej["column"]) == {"role"}


@pytest.mark.parametrize("ids", [
    ["E1", "E2", "E1", "E3", "E1", "E2"],  # later duplicates rejected, the first kept
    ["E1", None, None, "E2", None],  # missing ids equal each other, but a row with no key part is not shown as one
    ["E3", "E2", "E1"],  # descending: no duplicate, the ascending shortcut not taken
    ["E1", "E2", "E2"],  # ascending but not strictly
    ["E1"], [],
])
def test_duplicates_single_key(ids):
    t = TABLES["time_entries"]
    df = frame(t, len(ids), entry_id=pd.Series(ids, dtype=S), minutes=np.full(len(ids), 10.0))
    same(t, df)


def test_duplicates_multi_column_key_with_null_parts_and_mixed_value_types():
    t = TABLES["claims"]
    claim = pd.Series(["C1", "C1", "C1", None, None, "C2", None, None, "C1", "C3"], dtype=S)
    line = pd.array([1, 2, 1, 1, 1, None, None, None, None, 5], dtype="Int64")
    df = frame(t, len(claim), claim_id=claim, line=line, units=pd.array([1, 150, 1, 0, 1, 1, 1, 1, 1, 1], dtype="Int64"),
               paid_amount=np.array([1.0, -2.0, np.nan, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]))
    rej = same(t, df)
    dup = rej[rej["column"] == "claim_id+line"]
    # claim_id's values come first (rows 2, 8), then line's where the claim_id is missing (row 4); rows 6, 7 have no part
    assert list(dup["row"]) == [2, 4] and list(dup["value"]) == ["C1", "1"]
    # a row failing two checks (units below and paid below) is listed once per check
    assert sorted(rej.loc[rej["row"] == 1, "problem"]) == ["above the maximum of 99", "below the minimum of 0"]


def test_value_text_follows_the_common_type_of_the_failures():
    t = TABLES["claims"]
    ids = pd.Series(["a", "b", "c"], dtype=S)
    ints = dict(claim_id=ids, line=pd.array([1, 2, 3], dtype="Int64"), units=pd.array([150, 1, 1], dtype="Int64"))
    # with a failing float beside it, 150 reads 150.0 (as pandera wrote it); alone, 150
    assert list(same(t, frame(t, 3, **ints, paid_amount=np.array([1.0, -2.0, 3.0])))["value"]) == ["150.0", "-2.0"]
    assert list(same(t, frame(t, 3, **ints, paid_amount=np.array([1.0, 2.0, 3.0])))["value"]) == ["150"]
    dups = dict(ints, claim_id=pd.Series(["a", "a", "c"], dtype=S), line=pd.array([1, 1, 3], dtype="Int64"))
    assert list(same(t, frame(t, 3, **dups, paid_amount=np.array([1.0, -2.0, 3.0])))["value"]) == ["a", "150", "-2.0"]


@pytest.mark.parametrize("seed", range(12))
def test_random_frames(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    t = TABLES["claims"]
    ids = [f"C{i:03d}" for i in range(max(n, 1))]
    claim = pd.Series(np.sort(rng.choice(ids, n)) if seed % 3 == 0 else rng.choice(ids + [None], n), dtype=S)
    line = pd.array(rng.choice([1, 2, 3, 0, -1, None], n, p=[.4, .3, .1, .1, .05, .05]) if n else [], dtype="Int64")
    df = frame(t, n, claim_id=claim, line=line,
               units=pd.array(rng.choice([1, 2, 0, 150, 99, 100, None], n) if n else [], dtype="Int64"),
               paid_amount=rng.choice([1.5, -2.0, np.nan, 0.0, -0.01], n) if seed % 2 else rng.choice([1.5, np.nan], n),
               allowed_amount=rng.choice([1.5, -2.0, np.nan], n))
    same(t, df)
    te = TABLES["time_entries"]
    same(te, frame(te, n, entry_id=pd.Series(rng.choice(ids + [None], n), dtype=S), minutes=rng.choice([5.0, -1, 300, 2000, np.nan], n)))
    st = TABLES["staff"]
    same(st, frame(st, n, staff_id=pd.Series(rng.choice(ids[:20] + [None], n), dtype=S),
                   role=pd.Series(rng.choice(["rn", "ma", "boss", None, "np"], n), dtype=S)))


def _raw_tables(folder) -> dict[str, pd.DataFrame]:
    sources = io.find_sources(folder)
    return {name: io.read_raw(src) for name, src in sources.items()}


def _corrupt(name: str, raw: pd.DataFrame, rng) -> pd.DataFrame:
    """Shuffled rows, duplicates of earlier rows, out-of-range and implausible values, blank key parts."""
    raw = raw.sample(frac=1, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)
    extra = raw.sample(n=min(len(raw), 7), random_state=1).assign(_line=lambda d: d["_line"] + 100_000)
    raw = pd.concat([raw, extra], ignore_index=True)
    raw = raw.astype({c: object for c in raw.columns if c != "_line"})
    pick = lambda k: rng.choice(len(raw), size=min(k, len(raw)), replace=False)  # noqa: E731
    if name == "time_entries":
        raw.loc[pick(5), "minutes"] = -3
        raw.loc[pick(5), "minutes"] = 2000
        raw.loc[pick(5), "minutes"] = 300
        raw.loc[pick(3), "entry_id"] = None
    if name == "claims":
        raw.loc[pick(4), "units"] = 150
        raw.loc[pick(4), "line"] = 0
        raw.loc[pick(4), "paid_amount"] = -1.25
        raw.loc[pick(3), "claim_id"] = ""
    if name == "staff":
        raw.loc[pick(2), "role"] = "Boss"
    if name == "consents":
        raw.loc[pick(3), "method"] = "email"
    return raw


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_synthetic_practices_through_validate_table(tmp_path, monkeypatch, fmt):
    from ccmlib.synth.generator import generate

    generate(120, "2026-01..2026-03", 11, out=tmp_path / "p", fmt=fmt)
    rng = np.random.default_rng(3)
    tables = _raw_tables(tmp_path / "p")
    variants = [(name, raw) for name, raw in tables.items()] + [(name, _corrupt(name, raw, rng)) for name, raw in tables.items()]
    rejected = 0
    for name, raw in variants:
        table = TABLES[name]
        new_ok, new_dq = validate_table(table, raw, f"{name}.{fmt}")
        with monkeypatch.context() as m:
            m.setattr(validate, "_check_rows", pandera_check_rows)
            old_ok, old_dq = validate_table(table, raw, f"{name}.{fmt}")
        pd.testing.assert_frame_equal(new_dq.reset_index(drop=True), old_dq.reset_index(drop=True))
        pd.testing.assert_frame_equal(new_ok, old_ok)
        rejected += int((new_dq["action"] == "rejected").sum())
    assert rejected > 40  # the corrupted copies did exercise the checks


def test_validate_does_not_import_pandera():
    import subprocess
    import sys

    code = "import sys, ccmlib.intake.load; print('pandera' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_an_end_before_its_start_is_rejected_with_the_end_as_hh_mm_and_a_disagreeing_duration_named():
    raw = pd.DataFrame({"entry_id": ["T1", "T2", "T3", "T4"], "patient_id": ["P1"] * 4, "staff_id": ["S1"] * 4,
                        "activity_date": ["2026-01-05"] * 4, "minutes": ["", "", "45", "20"],
                        "start_time": ["10:30", "09:00", "08:00", "23:50"], "end_time": ["10:05", "09:20", "08:15", "00:10"],
                        "activity": ["care_coordination"] * 4, "description": ["call"] * 4, "_line": [2, 3, 4, 5]})
    ok, dq = validate_table(TABLES["time_entries"], raw, "time_entries.csv")
    rows = dq[["line", "column", "problem", "value", "action"]].values.tolist()
    assert [2, "end_time", "end_time before start_time", "10:05", "rejected"] in rows
    assert [5, "end_time", "end_time before start_time", "00:10", "rejected"] in rows  # past midnight: a typo to fix, not a wrap
    assert [4, "minutes", "minutes disagree with start_time/end_time", "45.0", "rejected"] in rows
    assert ok["entry_id"].tolist() == ["T2"]
