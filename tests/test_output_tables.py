"""The output tables and their CSV text, built on integer keys and Arrow kernels, are what the plain pandas expressions
(pivot, merge, sort_values, to_csv) give: values, dtypes and bytes, on random frames with every awkward value."""
import numpy as np
import pandas as pd
import pytest

from ccmlib.engine.money import codes_label
from ccmlib.engine.pipeline import PM_COLUMNS, _csv, _csv_bytes, _csv_pandas, _patient_months_table, _sort_order

PM = ["patient_id", "mkey"]
# a lone carriage return is left out: the Arrow writer quotes it and pandas (lineterminator "\n") does not, which the
# engine's earlier writer did too; the outputs keep that byte for byte (so does a table of one column with a missing
# value, which pandas writes as "" and the Arrow writer as an empty line; no output table has one column)
TEXT = ["plain", "a, b", 'say "hi"', "two\nlines", "crlf\r\n", "", "é, ü", '"', ",", "P10", "P9", "p1"]


def _frame(rng, n):
    return pd.DataFrame({
        "text": pd.Series(rng.choice(TEXT + [None], n), dtype="string"),
        "plain": pd.Series(rng.choice(["x", "y", None], n), dtype="str"),
        "obj": pd.Series(rng.choice(TEXT + [None], n), dtype=object),
        "money": rng.choice([42.5, 66.13, 0.1 + 0.2, 12345678.9, 0.0, np.nan, 1e-05], n),
        "n": pd.array(rng.choice([1, 2, None], n), dtype="Int64"),
        "k": rng.integers(-5, 5, n),
        "flag": rng.random(n) < 0.5,
        "day": pd.to_datetime(rng.choice(["2026-01-31", None, "2025-12-01"], n)),
    })


@pytest.mark.parametrize("seed,chunk", [(0, 262_144), (1, 7), (2, 1)])
def test_csv_bytes_are_what_pandas_writes(seed, chunk, monkeypatch):
    from ccmlib.engine import pipeline

    monkeypatch.setattr(pipeline, "CSV_CHUNK_ROWS", chunk)  # a table written in slices of `chunk` rows
    rng = np.random.default_rng(seed)
    df = _frame(rng, 300)
    for part in (df, df.iloc[37:211], df.iloc[:1], df.iloc[:0], df[["plain", "k"]], df[["text", "n"]].iloc[5:9],
                 df.sample(frac=1, random_state=seed)):
        want = _csv_pandas(part)
        assert _csv(part) == want
        assert _csv_bytes(part) == want.encode("utf-8")
    neg = pd.DataFrame({"v": [0.0, -0.0, 1.5, np.nan], "k": 1})  # -0.0 is written as such
    assert _csv_bytes(neg) == _csv_pandas(neg).encode("utf-8")


@pytest.mark.parametrize("na_position", ["first", "last"])
def test_sort_order_is_sort_values_mergesort(na_position):
    rng = np.random.default_rng(7)
    n = 2000
    cats = pd.Categorical(rng.choice(["P2", "P10", "P1", None], n), categories=["P2", "P10", "P1", "P0"])
    df = pd.DataFrame({
        "cat": cats,  # a categorical ranks as its text, as the tables sort their ids after astype("string")
        "s": pd.Series(rng.choice(["b", "a", "c", None], n), dtype="string"),
        "i": pd.array(rng.choice([3, 1, 2, None], n), dtype="Int64"),
        "d": pd.to_datetime(rng.choice(["2026-01-02", "2026-01-01", None], n)),
        "o": pd.Series(rng.choice(["z, y", "a", None], n), dtype=object),
    })
    df["sorted_cat"] = pd.Categorical(rng.choice(["A", "B10", "B9", None], n), categories=["A", "B10", "B9", "C"])  # text order
    df["int_cat"] = pd.Categorical(rng.choice([2, 10, 1], n), categories=[1, 2, 10])  # ranked as "1" < "10" < "2"
    keys = ["sorted_cat", "int_cat", "cat", "s", "i", "d", "o"]
    text = {c: df[c].astype("string") for c in ("cat", "sorted_cat", "int_cat")}
    want = df.assign(**text).sort_values(keys, kind="mergesort", na_position=na_position).index
    assert list(_sort_order([df[k] for k in keys], na_position=na_position)) == list(want)
    one = _sort_order([df["s"]], na_position=na_position)
    assert list(one) == list(df.sort_values("s", kind="mergesort", na_position=na_position).index)
    assert list(_sort_order([df["s"].iloc[:0]])) == []


def _pm_table_by_merge(pm, lines, settled, findings):
    """The pivot-and-merge formulation the engine's table replaced (its reference)."""
    billed = lines.pivot_table(index=PM, columns="cpt_code", values="units", aggfunc="sum", fill_value=0)
    supp = settled.pivot_table(index=PM, columns="cpt_code", values="units_supported", aggfunc="sum", fill_value=0)
    over = settled.groupby(PM)[["overpayment", "cost_sharing"]].sum()
    lab = pd.DataFrame({"codes_billed": codes_label(billed), "codes_supported": codes_label(supp)}, index=billed.index)
    out = pm.merge(lab.reset_index(), on=PM, how="left").merge(over.reset_index(), on=PM, how="left")
    standing = findings[findings["review_decision"] != "overturn"]
    counts = standing.pivot_table(index=PM, columns="severity", values="rule_id", aggfunc="count", fill_value=0)
    counts = counts.reindex(columns=["error", "warning"], fill_value=0).rename(columns={"error": "errors", "warning": "warnings"})
    out = out.merge(counts.reset_index(), on=PM, how="left")
    for c in ("errors", "warnings"):
        out[c] = out[c].fillna(0).astype("int64")
    for c in ("codes_billed", "codes_supported"):
        out[c] = out[c].fillna("")
    for c in ("overpayment", "cost_sharing", "missed_amount"):
        out[c] = out[c].fillna(0.0).round(2)
    for c in ("qualifying_minutes", "practitioner_minutes", "documented_minutes"):
        out[c] = out[c].round(2)
    out = out[PM_COLUMNS].assign(patient_id=out["patient_id"].astype("string"))
    return out.sort_values(["patient_id", "service_month"], kind="mergesort").reset_index(drop=True)


def _pm_inputs(rng, n_pm=400, n_lines=700, n_findings=600):
    cats = pd.Index([f"P{i}" for i in range(60)])  # not in text order: P10 < P2
    keys = pd.DataFrame({"p": rng.integers(0, 60, n_pm * 2), "m": rng.integers(24312, 24315, n_pm * 2)}).drop_duplicates().head(n_pm)
    day = pd.Timestamp("2026-01-05")
    pm = pd.DataFrame({
        "patient_id": pd.Categorical.from_codes(keys["p"].to_numpy(), categories=cats),
        "mkey": keys["m"].to_numpy(dtype="int64"),
        "service_month": [f"{k // 12}-{k % 12 + 1:02d}" for k in keys["m"]],
        "qualifying_minutes": rng.random(len(keys)) * 70, "practitioner_minutes": rng.random(len(keys)) * 40,
        "documented_minutes": rng.random(len(keys)) * 90, "chronic_conditions": rng.integers(0, 5, len(keys)),
        "missed_amount": rng.choice([0.0, 41.333, np.nan], len(keys)),
        **{f"date_{t}min": pd.Series(rng.choice([day, pd.NaT], len(keys))).astype("datetime64[ns]") for t in (20, 40, 60)},
    }).sample(frac=1, random_state=1).reset_index(drop=True)
    lines = pd.DataFrame({
        "patient_id": pd.Categorical.from_codes(rng.integers(-1, 60, n_lines), categories=cats),
        "mkey": pd.array(rng.choice([24312, 24313, 24314, 24320, None], n_lines), dtype="Int64"),
        "cpt_code": pd.Series(rng.choice(["99490", "99439", "99487", "G0506", "99213", None], n_lines), dtype="string"),
        "units": rng.integers(1, 4, n_lines),
    })
    settled = lines.assign(units_supported=np.minimum(lines["units"], rng.integers(0, 3, n_lines)),
                           overpayment=rng.choice([0.0, 51.85, 14.28, 0.1, np.nan], n_lines),
                           cost_sharing=rng.choice([0.0, 10.37, 0.2], n_lines))
    findings = pd.DataFrame({
        "patient_id": pd.Series(rng.choice([f"P{i}" for i in range(62)] + [None], n_findings), dtype=object),
        "mkey": rng.choice([24312, 24313, 24314], n_findings),
        "rule_id": rng.choice(["TIME-01", "CONS-01", None], n_findings),
        "severity": pd.Series(rng.choice(["error", "warning", "info", None], n_findings), dtype=object),
        "review_decision": rng.choice(["", "overturn", "confirm"], n_findings),
    })
    return pm, lines, settled, findings


@pytest.mark.parametrize("seed", [0, 1])
def test_patient_months_table_is_the_pivot_and_merge(seed):
    rng = np.random.default_rng(seed)
    pm, lines, settled, findings = _pm_inputs(rng)
    codes = ["99490", "99439", "99487", "99489", "99491", "99437", "G0506", "G0511"]
    every_code = lines.assign(cpt_code=pd.Series(rng.choice(codes, len(lines)), dtype="string"))
    cases = [(pm, lines, settled, findings), (pm.iloc[:0], lines, settled, findings), (pm, lines.iloc[:0], settled.iloc[:0], findings),
             (pm, lines.assign(cpt_code="99213"), settled.assign(cpt_code="99213"), findings.iloc[:0]),
             (pm.iloc[:1], lines.iloc[:3], settled.iloc[:3], findings.iloc[:5]),
             (pm, every_code, settled.assign(cpt_code=every_code["cpt_code"]), findings),  # all eight CCM codes billed
             (pm.assign(patient_id=pm["patient_id"].astype(object)), lines, settled, findings)]
    for args in cases:
        got, want = _patient_months_table(*args), _pm_table_by_merge(*args)
        assert list(got.dtypes) == list(want.dtypes)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert _csv_bytes(got) == _csv_pandas(want).encode("utf-8")


def _several_by_groupby(cl):
    n = cl.groupby(["patient_id", "service_month"])["billing_npi"].nunique()
    return {"patient_months": int((n > 1).sum()), "of_patient_months": int(len(n))}


def _no_prior_visit_by_merge(visits, cl):
    pairs = cl[["patient_id", "service_month", "billing_npi"]].astype("string").drop_duplicates()
    total = int(len(pairs[["patient_id", "service_month"]].drop_duplicates()))
    v = visits.dropna(subset=["visit_date"]).astype({"patient_id": "string", "npi": "string"})
    p = pairs.assign(_start=pd.to_datetime(pairs["service_month"] + "-01").to_numpy(), _i=np.arange(len(pairs)))
    m = p.merge(v, on="patient_id")
    hit = (m["visit_date"] < m["_start"]) & (m["visit_date"] >= m["_start"] - pd.Timedelta(days=365)) \
        & (m["npi"] == m["billing_npi"]).fillna(False)
    miss = p[~np.isin(p["_i"].to_numpy(), m.loc[hit.astype(bool), "_i"].unique())]
    return {"patient_months": int(len(miss[["patient_id", "service_month"]].drop_duplicates())),
            "patients": int(miss["patient_id"].nunique()), "of_patient_months": total, "assessable": True}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_risk_indicators_on_codes_are_the_groupby_and_merge(seed):
    from types import SimpleNamespace

    from ccmlib.engine.indicators import no_prior_visit, several_practitioners

    rng = np.random.default_rng(seed)
    n = 900
    patients = [f"P{i}" for i in range(40)]
    npis = ["1111111111", "2222222222", "3333333333"]
    cl = pd.DataFrame({"patient_id": pd.Series(rng.choice(patients + [None], n), dtype="string"),
                       "service_month": pd.Series(rng.choice(["2026-01", "2026-02", "2026-03", None], n, p=[.3, .3, .3, .1]), dtype="str"),
                       "billing_npi": pd.Series(rng.choice(npis + [None], n), dtype="string")})
    cats = pd.Index(patients + ["P99"])
    days = pd.to_datetime("2024-12-01") + pd.to_timedelta(rng.integers(0, 480, 700), unit="D")
    enc = pd.DataFrame({"patient_id": pd.Categorical(rng.choice(patients + ["P99", None], 700), categories=cats),
                        "encounter_date": pd.Series(days).where(rng.random(700) > 0.05),
                        "practitioner_npi": pd.Series(rng.choice(npis + ["9", None], 700), dtype="string")})
    claims = pd.DataFrame({"patient_id": pd.Categorical(rng.choice(patients, 300), categories=cats),
                           "service_date": pd.Series(days[:300]), "billing_npi": pd.Series(rng.choice(npis, 300), dtype="string"),
                           "cpt_code": rng.choice(["99213", "99490"], 300)})
    facts = SimpleNamespace(missing=set(), encounters=enc, claims=claims)
    visits = pd.concat([pd.DataFrame({"patient_id": enc["patient_id"], "visit_date": enc["encounter_date"], "npi": enc["practitioner_npi"]}),
                        pd.DataFrame({"patient_id": claims["patient_id"], "visit_date": claims["service_date"], "npi": claims["billing_npi"]})
                        [claims["cpt_code"].to_numpy() != "99490"]], ignore_index=True)
    for part in (cl, cl.dropna(), cl.iloc[:1], cl.iloc[::7]):
        assert several_practitioners(part) == _several_by_groupby(part)
        assert no_prior_visit(facts, part) == _no_prior_visit_by_merge(visits, part)


def test_line_rules_are_the_merge_and_join():
    from ccmlib.engine.pipeline import _line_rules
    from ccmlib.intake.fastops import join_groups

    rng = np.random.default_rng(4)
    n_lines, n_eff = 300, 900
    settled = pd.DataFrame({"claim_id": pd.Series([f"C{i // 2}" for i in range(n_lines)], dtype="string"),
                            "line": pd.array([i % 2 + 1 for i in range(n_lines)], dtype="Int64")}).sample(frac=1, random_state=2)
    kept = pd.DataFrame({"fid": np.arange(400), "rule_id": pd.Series(rng.choice(["TIME-01", "CONS-01", "BILL-06", "DX-01"], 400), dtype="str")})
    effects = pd.DataFrame({"fid": rng.integers(0, 450, n_eff), "claim_id": pd.Series(rng.choice([f"C{i}" for i in range(170)], n_eff), dtype="str"),
                            "line": rng.integers(1, 4, n_eff), "units_removed": rng.integers(0, 2, n_eff)})

    def by_join(effects, kept, settled):
        e = effects.loc[effects["units_removed"] > 0, ["fid", "claim_id", "line"]].merge(kept[["fid", "rule_id"]], on="fid")
        per = e.drop_duplicates(["claim_id", "line", "rule_id"]).sort_values("rule_id", kind="mergesort")
        per = join_groups(per, ["claim_id", "line"], "rule_id", ";")
        return per.reindex(pd.MultiIndex.from_frame(settled[["claim_id", "line"]])).fillna("").to_numpy(dtype=object)

    for eff in (effects, effects.iloc[:0], effects.assign(units_removed=0), effects.iloc[:5]):
        got, want = _line_rules(eff, kept, settled), by_join(eff, kept, settled)
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
    assert any(";" in v for v in _line_rules(effects, kept, settled))


def test_write_csv_streams_slices_and_falls_back_whole_to_pandas(tmp_path, monkeypatch):
    from ccmlib.engine import pipeline

    monkeypatch.setattr(pipeline, "CSV_CHUNK_ROWS", 2)
    df = _frame(np.random.default_rng(9), 11)
    pipeline._write_csv(tmp_path / "a.csv", df)
    assert (tmp_path / "a.csv").read_bytes() == _csv_pandas(df).encode("utf-8")
    odd = pd.DataFrame({"k": range(7), "mixed": ["a", "b", "c", "d", "e", 6, None]})  # not text past the first slices
    pipeline._write_csv(tmp_path / "b.csv", odd)
    assert (tmp_path / "b.csv").read_bytes() == _csv_pandas(odd).encode("utf-8")
    assert _csv(odd) == _csv_pandas(odd)


def test_as_string_is_astype_string():
    from ccmlib.engine.pipeline import _as_string

    text = pd.Categorical(["P2", None, "P10", "P2", "é"], categories=["P10", "P2", "é", "unused"])
    cases = [pd.Series(text, index=[5, 6, 7, 8, 9], name="patient_id"), pd.Series(text.astype(object)),
             pd.Series(pd.Categorical(["a", "b"], categories=pd.Index(["b", "a"], dtype=object))),
             pd.Series(pd.Categorical([1, 10, None])), pd.Series(pd.Categorical([], categories=["x"])),
             pd.Series(["x", None], dtype="str")]
    for s in cases:
        got, want = _as_string(s), s.astype("string")
        pd.testing.assert_series_equal(got, want, check_exact=True)
        assert pa_type(got) == pa_type(want)


def pa_type(s):
    arr = getattr(s.array, "_pa_array", None)
    return None if arr is None else arr.type
