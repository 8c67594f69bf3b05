"""The time entries' facts as the engine holds them (Arrow, with DuckDB for the overlaps: sqlfacts.entry_store, issue
#23) are the pandas engine's, frame for frame: every column, dtype, value and index label. The pandas reference below is
``facts.time_entry_facts`` as it was before the switch (commit 29ac84d), kept as the oracle. Compared on the demo, on
generated practices with every pitfall at a high rate (revocations, overlaps with tied starts, unknown staff, missing
times) and on a practice whose patient ids are plain text rather than the engine's shared categories."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ccmlib.engine import facts as F
from ccmlib.engine.facts import consent_episode, month_practitioner
from ccmlib.engine.indicators import _rate
from ccmlib.engine.periods import month_key, parse_period
from ccmlib.engine.sqlfacts import entry_store, overlap_minutes
from ccmlib.intake.fastops import distinct_rows, positions
from ccmlib.intake.schema import CLINICAL_STAFF_ROLES, PRACTITIONER_ROLES


# --------------------------------------------------------------------------- the pandas reference (before the switch)
def ref_time_entry_facts(te: pd.DataFrame, staff: pd.DataFrame, consents: pd.DataFrame, lines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Duration, exclusion reasons and qualifying minutes of every entry. ``lines`` (the period's CCM lines) name the
    practitioner each month's time is judged for (CONS-05, catalog v3: :func:`month_practitioner`)."""
    e = te.copy(deep=False)  # copy-on-write (pandas 3): new columns go to e only, te is never modified
    span = (e["end_time"] - e["start_time"]).astype("float64")
    e["duration"] = e["minutes"].fillna(span)
    roster = staff.drop_duplicates("staff_id")
    pos = positions(e["staff_id"], roster["staff_id"])  # -1 = not in the staff table
    roles = np.append(roster["role"].astype(object).to_numpy(), None)
    e["role"] = pd.Series(roles[pos], index=e.index, dtype="string")
    sup = np.append(roster["supervising_npi"].astype(object).to_numpy(), None) if "supervising_npi" in roster else np.full(len(roster) + 1, None)
    e["supervising_npi"] = pd.Series(sup[pos], index=e.index, dtype="string")
    e["is_practitioner"] = e["role"].isin(PRACTITIONER_ROLES).astype(bool)
    desc = e["description"].astype("string").str.strip()
    e["x_incomplete"] = (desc.isna() | (desc == "") | e["staff_id"].isna() | e["duration"].isna()).astype(bool)
    e["x_staff"] = (e["staff_id"].notna() & ~e["role"].isin(CLINICAL_STAFF_ROLES + PRACTITIONER_ROLES)).astype(bool)
    e["x_f2f"] = e["face_to_face"].fillna(False).astype(bool)
    e["x_counted"] = e["counted_toward"].notna()
    first_consent = consents.groupby("patient_id", observed=True)["consent_date"].min()
    fc = pd.Series(first_consent.reindex(e["patient_id"]).to_numpy(), index=e.index, dtype="datetime64[ns]")
    e["first_consent"] = fc
    e["x_before_consent"] = (fc.notna() & (e["activity_date"] < fc)).astype(bool)
    e["x_no_consent"] = fc.isna()
    mkey = month_key(e["activity_date"])
    # both are row-wise functions of a few columns that repeat (about eight entries per patient-month): computed once
    # per distinct patient-month, and per distinct (patient, day, practitioner), then spread back to the entries
    g, first = distinct_rows(e["patient_id"], mkey)
    judged = month_practitioner(lines, consents, pd.DataFrame({"patient_id": e["patient_id"].iloc[first], "mkey": mkey.iloc[first]}))
    e["judged_npi"] = judged.to_numpy()[g]  # object, as before
    # the judged consent's revocation: only patients with a revoked consent can have one
    revoked = np.full(len(e), np.datetime64("NaT"), dtype="datetime64[ns]")
    after = np.zeros(len(e), dtype=bool)
    some = e["patient_id"].isin(consents.loc[consents["revoked_date"].notna(), "patient_id"].unique()).to_numpy(dtype=bool)
    if some.any():
        s = e[some]
        g, first = distinct_rows(s["patient_id"], s["activity_date"], s["judged_npi"])
        ep = consent_episode(s["patient_id"].iloc[first], s["activity_date"].iloc[first], consents, s["judged_npi"].iloc[first])
        revoked[some] = ep["revoked_date"].to_numpy(dtype="datetime64[ns]")[g]
        after[some] = ep["after_revocation"].to_numpy(dtype=bool)[g]
    e["revoked_date"] = revoked
    e["x_after_revocation"] = ~e["x_before_consent"] & ~e["x_no_consent"] & after
    e["overlap"] = overlap_minutes(e)
    e["x_overlap"] = e["overlap"] > 0
    e["x_unsupervised"] = (e["role"].isin(CLINICAL_STAFF_ROLES) & e["supervising_npi"].isna()).astype(bool)  # SUP-01: still counts
    excluded = e[["x_incomplete", "x_staff", "x_f2f", "x_counted", "x_before_consent", "x_no_consent", "x_after_revocation"]].any(axis=1)
    e["qualifying"] = np.where(excluded, 0.0, (e["duration"].fillna(0) - e["overlap"]).clip(lower=0))
    e["prac_qualifying"] = np.where(e["is_practitioner"], e["qualifying"], 0.0)
    e["mkey"] = month_key(e["activity_date"])
    return e


# --------------------------------------------------------------------------- inputs as build_facts gives them
def _inputs(practice, period=None):
    tabs = F.encoded_tables(practice)
    te, staff, consents = tabs["time_entries"], tabs["staff"], tabs["consents"]
    claims = tabs["claims"].copy(deep=False)
    claims["units"] = claims["units"].fillna(1).astype("int64")
    claims["mkey"] = month_key(claims["service_date"])
    claims["_claim_order"] = F.natural_key(claims["claim_id"])
    lines = claims[claims["cpt_code"].isin(F.CCM_CODES)]
    if period is not None:
        per = parse_period(period)
        lines = lines[lines["mkey"].between(per.first, per.last).fillna(False).astype(bool)]
        te = te[month_key(te["activity_date"]).between(per.first, per.last).fillna(False).astype(bool)]
    return te, staff, consents, lines.copy()


def _same(te, staff, consents, lines):
    want = ref_time_entry_facts(te, staff, consents, lines)
    store = entry_store(te, staff, consents, lines)
    pd.testing.assert_frame_equal(store.frame(), want)
    # the rows a rule asks for are the reference's rows, with their labels
    for where, mask in (("x_overlap", want["x_overlap"]), ("x_before_consent OR x_no_consent OR x_after_revocation",
                                                           want["x_before_consent"] | want["x_no_consent"] | want["x_after_revocation"]),
                        ("coalesce(qualifying, 0) > 0 AND signed_by IS NULL", (want["qualifying"] > 0) & want["signed_by"].isna())):
        fresh = entry_store(te, staff, consents, lines)  # rows() before and after frame() is built
        pd.testing.assert_frame_equal(fresh.rows(where), want[mask])
        pd.testing.assert_frame_equal(store.rows(where), want[mask])
    flags = ["x_before_consent", "x_no_consent", "x_after_revocation"]
    pd.testing.assert_frame_equal(store.rows(flags), want[want[flags].any(axis=1)])  # a list of flags: any of them
    with pytest.raises(ValueError, match="not flag columns"):
        store.rows(["x_overlap", "duration"])
    pd.testing.assert_frame_equal(entry_store(te, staff, consents, lines).patient_months(), want[["patient_id", "mkey"]].drop_duplicates())
    cols = ["staff_id", "patient_id", "mkey", "duration", "qualifying"]
    pd.testing.assert_frame_equal(entry_store(te, staff, consents, lines).rows(columns=cols), want[cols])
    return want


def test_demo_practice():
    from ccmlib.intake.load import load_practice
    want = _same(*_inputs(load_practice(Path(__file__).resolve().parents[1] / "data" / "demo"), "2026Q3"))
    assert want["x_overlap"].any() and (want["qualifying"] > 0).any() and (want["qualifying"] == 0).any()


@pytest.mark.parametrize("seed", [3, 8])
def test_generated_practices_with_many_pitfalls(seed):
    from ccmlib.synth.examples import practice
    from ccmlib.synth.generator import build, parse_rates
    t = build(250, "2026-01..2026-03", seed, parse_rates(["0.025", "CONS-05=0.08", "TIME-03=0.08", "TIME-02=0.05"]), entries=(3, 6))
    t.pop("truth")
    tables = {k: v.astype(str).replace({"nan": "", "<NA>": "", "NaT": ""}).to_dict("records") for k, v in t.items()}
    # tied starts: one staff member starts two entries the same minute of a day, ids out of natural order (T9, T10)
    te = tables["time_entries"]
    timed = [r for r in te if r.get("start_time")]
    if len(timed) > 2:
        timed[1].update(staff_id=timed[0]["staff_id"], activity_date=timed[0]["activity_date"], start_time=timed[0]["start_time"])
    p = practice(tables)
    want = _same(*_inputs(p))
    # the comparison covers what it should: revocations, overlaps, unknown staff, entries without times
    assert want["x_after_revocation"].any() and want["x_overlap"].any() and want["x_staff"].any()
    assert want["start_time"].isna().any() and want["revoked_date"].notna().any()


def test_blank_descriptions_and_roster_gaps():
    """Descriptions of only whitespace (ASCII and Unicode) are blank; a staff member whose roster row lacks a role or a
    supervisor, or who is not on the roster, has none: the store's looked-up text is missing exactly there."""
    from ccmlib.intake.load import load_practice
    te, staff, consents, lines = _inputs(load_practice(Path(__file__).resolve().parents[1] / "data" / "demo"), "2026Q3")
    te = te.copy()
    desc = te["description"].astype(object).to_numpy().copy()
    desc[:6] = [" ", "\t\n", "\u00a0", "\u2003 \u3000", " x ", "\u200b"]  # the last is not whitespace to a strip
    te["description"] = pd.Series(desc, index=te.index, dtype=te["description"].dtype)
    staff = staff.copy()
    clinical = staff.index[staff["role"].isin(CLINICAL_STAFF_ROLES)]
    staff.loc[clinical[:1], "role"] = pd.NA
    staff.loc[clinical[1:], "supervising_npi"] = pd.NA
    te.iloc[6, te.columns.get_loc("staff_id")] = "NOT-ON-ROSTER"
    want = _same(te, staff, consents, lines)
    assert want["x_incomplete"].iloc[:4].all() and not want["x_incomplete"].iloc[4:6].any()
    assert want["role"].isna().sum() >= 2 and want["x_unsupervised"].any() and want["supervising_npi"].isna().any()


def test_patient_ids_as_plain_text_and_no_consents():
    from ccmlib.intake.load import load_practice
    te, staff, consents, lines = _inputs(load_practice(Path(__file__).resolve().parents[1] / "data" / "demo"), "2026Q3")
    te = te.assign(patient_id=te["patient_id"].astype("string"))
    store = entry_store(te, staff, consents, lines)
    want = ref_time_entry_facts(te.assign(patient_id=te["patient_id"].astype(object)), staff, consents, lines)
    got = store.frame()
    assert got["patient_id"].astype(str).tolist() == want["patient_id"].astype(str).tolist()
    pd.testing.assert_frame_equal(got.drop(columns="patient_id"), want.drop(columns="patient_id"))
    none = consents.iloc[:0]
    got = entry_store(te, staff, none, lines).frame()
    assert got["x_no_consent"].all() and (got["qualifying"] == 0).all()


def _ref_first_billing_npi(lines: pd.DataFrame, keys: pd.DataFrame) -> pd.Series:
    """The first part of facts.month_practitioner before it joined on integer codes: a text merge per patient-month."""
    k = pd.DataFrame({"patient_id": keys["patient_id"].astype("string").to_numpy(), "mkey": keys["mkey"].to_numpy(dtype="float64")})
    ln = lines.assign(_g=(lines["cpt_code"] == "G0506").astype(int), _o=F.natural_key(lines["claim_id"]))
    ln = ln.sort_values(["patient_id", "mkey", "_g", "service_date", "_o", "line"], kind="mergesort").drop_duplicates(F.PM)
    first = pd.DataFrame({"patient_id": ln["patient_id"].astype("string").to_numpy(), "mkey": ln["mkey"].to_numpy(dtype="float64"),
                          "npi": ln["billing_npi"].astype("string").to_numpy()})
    return pd.Series(k.merge(first, on=F.PM, how="left")["npi"].to_numpy(), index=keys.index, dtype="string")


@pytest.mark.parametrize("categorical", [True, False])
def test_the_months_first_billing_practitioner_by_integer_codes_is_the_text_merges(categorical):
    rng = np.random.default_rng(4)
    pats = np.array([f"P{i}" for i in range(30)])
    n = 200
    lines = pd.DataFrame({"patient_id": rng.choice(pats[:20], n), "mkey": rng.choice([24312, 24313, 24314], n).astype("float64"),
                          "cpt_code": rng.choice(["99490", "99439", "G0506"], n), "service_date": pd.to_datetime("2026-01-01")
                          + pd.to_timedelta(rng.integers(0, 80, n), unit="D"), "claim_id": [f"C{i}" for i in rng.integers(1, 60, n)],
                          "line": rng.integers(1, 3, n), "billing_npi": rng.choice(["111", "222", None], n)})
    lines["mkey"] = lines["mkey"].astype("Int64")
    keys = pd.DataFrame({"patient_id": rng.choice(pats, 80), "mkey": pd.array(rng.choice([24312, 24313, 24314, 24315], 80), dtype="Int64")},
                        index=np.arange(80)[::-1])
    if categorical:
        dtype = pd.CategoricalDtype(np.sort(pats))
        lines["patient_id"] = lines["patient_id"].astype(dtype)
        keys["patient_id"] = keys["patient_id"].astype(dtype)
    no_consents = pd.DataFrame({"patient_id": pd.Series([], dtype=keys["patient_id"].dtype), "consent_date": pd.Series([], dtype="datetime64[ns]"),
                                "practitioner_npi": pd.Series([], dtype="string")})
    got = month_practitioner(lines, no_consents, keys)
    want = _ref_first_billing_npi(lines, keys)
    assert got.tolist() == want.tolist() and got.index.equals(keys.index) and got.dtype == pd.StringDtype()
    assert got.notna().sum() > 10 and got.isna().sum() > 5


def ref_by_staff(entries: pd.DataFrame, pm: pd.DataFrame, keys) -> list[dict]:
    """indicators.by_staff before it read the store (the oracle). Per staff member who logged time in a billed patient-month: patient-months, those with an error, minutes logged
    and minutes that counted. ``keys`` name the patient-month in both frames (integer codes are fastest)."""
    keys = list(keys)
    billed = pm[pm["codes_billed"].fillna("") != ""][[*keys, "errors"]]
    e = entries.dropna(subset=["staff_id"])
    if e.empty or billed.empty:
        return []
    mins = e.groupby("staff_id", observed=True).agg(minutes_logged=("minutes", "sum"), minutes_counted=("qualifying", "sum"))
    pairs = e[["staff_id", *keys]].drop_duplicates().merge(billed, on=keys)
    g = pairs.assign(_err=pairs["errors"] > 0).groupby("staff_id", observed=True).agg(patient_months=("_err", "size"),
                                                                                   with_error=("_err", "sum"))
    g = g.join(mins, how="left")
    g["_rate"] = g["with_error"] / g["patient_months"]
    out = []
    for sid, x in g.sort_values(["_rate", "patient_months"], ascending=[False, False], kind="mergesort").iterrows():
        out.append({"staff_id": str(sid), "patient_months": int(x.patient_months), "with_error": int(x.with_error),
                    "error_rate": _rate(x.with_error, x.patient_months), "minutes_logged": int(round(float(x.minutes_logged or 0))),
                    "minutes_counted": int(round(float(x.minutes_counted or 0)))})
    return out


@pytest.mark.parametrize("seed", [2, 6])
def test_the_staff_breakdown_read_in_place_is_indicators_by_staff(seed):
    """sqlfacts.staff_breakdown (run.json's by_staff) equals indicators.by_staff on the full entries frame: order, counts,
    rates and rounded minutes, on a practice with errors in some billed months and entries in unbilled ones."""
    from ccmlib.engine.pipeline import _by_staff, audit
    from ccmlib.synth.examples import practice
    from ccmlib.synth.generator import build, parse_rates
    t = build(150, "2026-01..2026-03", seed, parse_rates(["0.04"]), entries=(2, 6))
    t.pop("truth")
    res = audit(practice({k: v.astype(str).replace({"nan": "", "<NA>": "", "NaT": ""}).to_dict("records") for k, v in t.items()}))
    pm = res.patient_months
    e = res.facts.entries
    entries = pd.DataFrame({"staff_id": e["staff_id"], "patient_id": e["patient_id"].astype(str),
                            "service_month": F.key_to_label(e["mkey"].astype("int64")), "minutes": e["duration"], "qualifying": e["qualifying"]})
    want = ref_by_staff(entries, pm.assign(patient_id=pm["patient_id"].astype(str)), keys=("patient_id", "service_month"))
    got = _by_staff(res.facts, pm)
    assert got == want
    assert len(got) > 5 and any(r["with_error"] for r in got) and any(not r["with_error"] for r in got)


@pytest.mark.parametrize("chunked", [False, True])
def test_repeated_text_is_held_as_a_dictionary_and_read_as_text(chunked):
    """The log's repeated text (activity, signer, a templated description) is kept as a dictionary array (a fraction of
    the memory on a large log), free text that does not repeat as it is; the rows and the frame read the same text. A
    log read in chunks (a large Parquet file) is encoded chunk by chunk with one dictionary."""
    import pyarrow as pa
    from ccmlib.intake.load import load_practice
    te, staff, consents, lines = _inputs(load_practice(Path(__file__).resolve().parents[1] / "data" / "demo"), "2026Q3")
    te = te.copy()
    te["activity"] = pd.Series(np.where(np.arange(len(te)) % 2, "phone call", "care plan review"), index=te.index, dtype=te["activity"].dtype)
    te["description"] = pd.Series([f"note {i} of a free text log" for i in range(len(te))], index=te.index, dtype=te["description"].dtype)
    if chunked:
        half = len(te) // 2
        for c in ("activity", "signed_by", "description"):
            values = te[c].astype(object).where(te[c].notna(), None).tolist()
            arr = pa.chunked_array([pa.array(values[:half], pa.large_string()), pa.array(values[half:], pa.large_string())])
            te[c] = pd.Series(pd.arrays.ArrowStringArray(arr), index=te.index)
    store = entry_store(te, staff, consents, lines)
    kinds = {c: pa.types.is_dictionary(store.table.schema.field(c).type) for c in ("activity", "description", "signed_by")}
    assert kinds == {"activity": True, "description": False, "signed_by": True}
    assert (store.table.column("activity").num_chunks > 1) == chunked
    want = _same(te, staff, consents, lines)  # every column as the pandas engine has it, text included
    assert want["activity"].tolist() == te["activity"].tolist() and want["signed_by"].notna().any()


@pytest.mark.parametrize("period", ["2026Q3", "2026-08", None])
def test_the_periods_entries_are_those_whose_month_is_in_it(period):
    """build_facts keeps the entries whose day falls in the period's months (two comparisons on the dates): the ones a
    month key per entry keeps, a missing day in none, a time of day on the last day of the period in it."""
    from ccmlib.engine.facts import build_facts
    from ccmlib.intake.load import load_practice
    p = load_practice(Path(__file__).resolve().parents[1] / "data" / "demo")
    te = p.tables["time_entries"].copy()
    days = te["activity_date"].to_numpy().copy()
    days[0], days[1], days[2] = np.datetime64("NaT"), np.datetime64("2026-09-30T23:59"), np.datetime64("2026-10-01T00:00")
    te["activity_date"] = days
    p.tables["time_entries"] = te
    f = build_facts(p, parse_period(period) if period else None)
    keys = month_key(te["activity_date"])
    want = te.loc[keys.between(f.period.first, f.period.last).fillna(False).astype(bool), "entry_id"]
    got = f.entry_rows(columns=["entry_id"])["entry_id"]
    assert got.tolist() == want.tolist() and len(got) > 0
    assert te["entry_id"].iloc[0] not in set(got)  # the missing day
    assert (te["entry_id"].iloc[1] in set(got)) == (period in ("2026Q3", None))
