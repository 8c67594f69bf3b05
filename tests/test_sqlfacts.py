"""The time-entry facts on DuckDB (ccmlib/engine/sqlfacts.py, issue #23) are the pandas engine's, frame for frame.

The pandas reference below is the engine's code as it was before the switch (ccmlib/engine/facts.py at d0d2791:
``overlap_minutes`` and the minutes and running-totals part of ``build_facts``), kept here as the oracle, as
test_fastops keeps the slow natural key. Compared on the demo practice, on two generated practices with every pitfall
and on hand-made edge cases (ties on start with ids C9/C10, entries without start or end, NaN durations, one staff
member across two patients, an entry past midnight)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ccmlib.engine import sqlfacts
from ccmlib.engine.facts import PM, PRACTITIONER_THRESHOLDS, STAFF_THRESHOLDS, build_facts, natural_key


# --------------------------------------------------------------------------- the pandas reference (before the switch)
def ref_overlap_minutes(e: pd.DataFrame) -> pd.Series:
    out = pd.Series(0.0, index=e.index)
    ok = e["start_time"].notna() & e["end_time"].notna() & e["staff_id"].notna()
    if not ok.any():
        return out
    staff = pd.factorize(e.loc[ok, "staff_id"])[0]
    day = e.loc[ok, "activity_date"].to_numpy().astype("int64")
    s = e.loc[ok, "start_time"].to_numpy(dtype="int64")
    f = e.loc[ok, "end_time"].to_numpy(dtype="int64")
    k = np.zeros(len(s), dtype="int64")
    keys = pd.DataFrame({"a": staff, "b": day, "c": s})
    tied = keys.duplicated(keep=False).to_numpy()
    if tied.any():
        k[tied] = pd.Series(natural_key(e.loc[ok, "entry_id"][tied]).to_numpy()).rank(method="first").to_numpy(dtype="int64")
    order = np.lexsort((k, s, day, staff))
    st, dy, s_, f_ = staff[order], day[order], s[order], f[order]
    group = np.r_[True, (st[1:] != st[:-1]) | (dy[1:] != dy[:-1])]
    gid = np.cumsum(group) - 1
    run_max = pd.Series(f_).groupby(gid).cummax().to_numpy()
    prev_end = np.where(group, -1, np.r_[-1, run_max[:-1]])
    counted = np.clip(f_ - np.maximum(s_, prev_end), 0, None)
    idx = e.index[ok.to_numpy()][order]
    out.loc[idx] = f_ - s_ - counted
    return out


def threshold_dates(cum: pd.DataFrame, req: pd.DataFrame, col: str) -> pd.Series:
    """facts.threshold_dates before the running totals stayed in Arrow: the date on which the cumulative minutes ``col``
    of each requirement's patient-month first reached ``req['need']`` (NaT if never). ``req`` has pm_id and need;
    ``cum`` is sorted by pm_id and date."""
    out = np.full(len(req), np.datetime64("NaT"), dtype="datetime64[ns]")
    needs = req["need"].to_numpy(dtype="float64")
    for need in np.unique(needs):  # a handful of thresholds (20, 40, 60, ...)
        hit = cum[cum[col] >= need].drop_duplicates("pm_id")
        first = pd.Series(hit["activity_date"].to_numpy(), index=hit["pm_id"].to_numpy())
        sel = needs == need
        out[sel] = first.reindex(req["pm_id"].to_numpy()[sel]).to_numpy()
    return pd.Series(out, index=req.index)


def ref_month_minutes(entries: pd.DataFrame, pm: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    mins = entries.groupby(PM, sort=False).agg(qualifying_minutes=("qualifying", "sum"), practitioner_minutes=("prac_qualifying", "sum"),
                                               documented_minutes=("duration", "sum"), last_activity=("activity_date", "max"))
    pm = pm.merge(mins.reset_index().astype({"mkey": "int64"}), on=PM, how="left")
    for c in ("qualifying_minutes", "practitioner_minutes", "documented_minutes"):
        pm[c] = pm[c].fillna(0.0)
    e = entries.loc[entries["qualifying"] > 0, ["patient_id", "mkey", "activity_date", "start_time", "qualifying", "prac_qualifying"]]
    e = e.merge(pm[PM + ["pm_id"]], on=PM, how="left")
    order = np.lexsort((e["start_time"].astype("float64").fillna(-1).to_numpy(), e["activity_date"].to_numpy().astype("int64"),
                        e["pm_id"].to_numpy()))
    e = e.iloc[order]
    g = e.groupby("pm_id", sort=False)
    cum = pd.DataFrame({"pm_id": e["pm_id"].to_numpy(), "activity_date": e["activity_date"].to_numpy(),
                        "staff_cum": g["qualifying"].cumsum().to_numpy(), "prac_cum": g["prac_qualifying"].cumsum().to_numpy()})
    for t in STAFF_THRESHOLDS:
        pm[f"date_{t}min"] = threshold_dates(cum, pm.assign(need=t), "staff_cum").to_numpy()
    for t in PRACTITIONER_THRESHOLDS:
        pm[f"date_{t}min_practitioner"] = threshold_dates(cum, pm.assign(need=t), "prac_cum").to_numpy()
    return pm, cum


PM_BASE = ["patient_id", "mkey", "pm_id", "service_month", "month_start", "month_end"]


def assert_same(entries: pd.DataFrame, pm_base: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """DuckDB and pandas agree on the overlap of ``entries`` and on the minutes, dates and running totals of
    ``pm_base``; returns the overlap and the patient-months."""
    got_o, want_o = sqlfacts.overlap_minutes(entries), ref_overlap_minutes(entries)
    pd.testing.assert_series_equal(got_o, want_o)
    got_pm, totals = sqlfacts.month_minutes(entries, pm_base)
    got_cum = totals.frame()
    want_pm, want_cum = ref_month_minutes(entries, pm_base)
    pd.testing.assert_frame_equal(got_pm, want_pm)
    pd.testing.assert_frame_equal(got_cum, want_cum)
    return got_o, got_pm


# --------------------------------------------------------------------------- whole practices
@pytest.fixture(scope="module")
def demo_facts():
    from ccmlib.intake.load import load_practice
    return build_facts(load_practice(Path(__file__).resolve().parents[1] / "data" / "demo"), None)


@pytest.fixture(scope="module", params=[11, 12])
def synth_facts(request):
    from ccmlib.synth.examples import practice
    from ccmlib.synth.generator import build, parse_rates
    t = build(300, "2026-01..2026-03", request.param, parse_rates(["0.03"]))
    t.pop("truth")
    return build_facts(practice({k: v.astype(str).replace({"nan": ""}).to_dict("records") for k, v in t.items()}), None)


def _check_practice(f):
    e = f.entries
    overlap, pm = assert_same(e, f.pm[PM_BASE])
    # and what the engine holds is exactly that (the switch changed nothing)
    pd.testing.assert_series_equal(e["overlap"], overlap, check_names=False)
    pd.testing.assert_frame_equal(f.pm[pm.columns], pm)
    _, want_cum = ref_month_minutes(e, f.pm[PM_BASE])
    pd.testing.assert_frame_equal(f.cum, want_cum)
    # BILL-05's reach dates read in place are threshold_dates on the sorted frame, for every need up to beyond the month
    req = pd.DataFrame({"pm_id": np.repeat(f.pm["pm_id"].to_numpy(), 4),
                        "need": np.tile(np.array([0.5, 20.0, 41.0, 500.0]), len(f.pm))}, index=np.arange(4 * len(f.pm))[::-1])
    for col in ("staff_cum", "prac_cum"):
        pd.testing.assert_series_equal(f.totals.reach(req, col), threshold_dates(want_cum, req, col))
    return e, pm


def test_demo_practice(demo_facts):
    e, pm = _check_practice(demo_facts)
    assert (e["overlap"] > 0).sum() > 0 and pm["date_20min"].notna().sum() > 0 and pm["date_30min_practitioner"].notna().sum() > 0


def test_generated_practices_with_every_pitfall(synth_facts):
    e, pm = _check_practice(synth_facts)
    # the comparison means something: overlaps, entries without times, excluded entries, months reaching 60 minutes
    assert (e["overlap"] > 0).sum() > 0 and e["start_time"].isna().sum() > 0 and (e["qualifying"] == 0).sum() > 0
    assert pm["date_60min"].notna().sum() > 0 and pm["date_90min"].notna().sum() > 0
    assert (pm["qualifying_minutes"] == 0).sum() > 0  # billed months without time


# --------------------------------------------------------------------------- hand-made edge cases
def _entries(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["entry_id", "patient_id", "staff_id", "activity_date", "start_time", "end_time", "duration",
                                     "qualifying", "prac_qualifying"])
    df["entry_id"] = df["entry_id"].astype("string")
    df["patient_id"] = df["patient_id"].astype("string")
    df["staff_id"] = df["staff_id"].astype("string")
    df["activity_date"] = pd.to_datetime(df["activity_date"]).astype("datetime64[ns]")
    df["start_time"] = df["start_time"].astype("Int32")
    df["end_time"] = df["end_time"].astype("Int32")
    df = df.astype({"duration": "float64", "qualifying": "float64", "prac_qualifying": "float64"})
    df["mkey"] = (df["activity_date"].dt.year * 12 + df["activity_date"].dt.month - 1).astype("float64")
    return df


def _pm_of(e: pd.DataFrame) -> pd.DataFrame:
    pm = e[PM].drop_duplicates().astype({"mkey": "int64"}).sort_values(PM, kind="mergesort").reset_index(drop=True)
    return pm.assign(pm_id=np.arange(len(pm)))


EDGE = [
    # ties on start: C10 and C9 start at 09:00; C9 is first in natural order (not in text order), so C10 is covered
    ("C10", "P1", "S1", "2026-01-05", 540, 560, 20, 20.0, 0.0),
    ("C9", "P2", "S1", "2026-01-05", 540, 550, 10, 10.0, 10.0),
    # one staff member across two patients, partly overlapping, and a third contained entry
    ("T1", "P1", "S2", "2026-01-05", 600, 630, 30, 30.0, 0.0),
    ("T2", "P2", "S2", "2026-01-05", 620, 650, 30, 20.0, 0.0),
    ("T3", "P1", "S2", "2026-01-05", 605, 615, 10, 0.0, 0.0),
    # same minutes on another day: no overlap
    ("T4", "P2", "S2", "2026-01-06", 600, 630, 30, 30.0, 0.0),
    # entries without start or end (never overlap, still counted by minutes), a NaN duration
    ("T5", "P1", "S2", "2026-01-05", None, None, 12, 12.0, 0.0),
    ("T6", "P1", "S2", "2026-01-05", 610, None, 5, 5.0, 0.0),
    ("T7", "P1", "S2", "2026-01-07", None, None, None, 0.0, 0.0),
    # past midnight: 23:30 to 00:15 (end before start) and an entry of the next day at 00:00
    ("T8", "P2", "S3", "2026-01-08", 1410, 15, 45, 45.0, 45.0),
    ("T9", "P2", "S3", "2026-01-08", 0, 10, 10, 10.0, 10.0),
    ("T10", "P2", "S3", "2026-01-09", 0, 30, 30, 30.0, 30.0),
    # no staff member: never overlaps
    ("T11", "P1", None, "2026-01-05", 600, 630, 30, 0.0, 0.0),
    # same date and start for one patient-month: the log's order decides the running total's row order
    ("T12", "P1", "S4", "2026-02-02", 480, 490, 10, 10.0, 0.0),
    ("T13", "P1", "S5", "2026-02-02", 480, 500, 20, 20.0, 20.0),
    ("T14", "P1", "S5", "2026-02-02", None, None, 7, 7.0, 7.0),
    # three-way tie on start with natural order C2 < C10 < C100
    ("C100", "P3", "S6", "2026-02-03", 60, 90, 30, 30.0, 30.0),
    ("C2", "P3", "S6", "2026-02-03", 60, 70, 10, 10.0, 10.0),
    ("C10", "P3", "S6", "2026-02-03", 60, 80, 20, 20.0, 20.0),
]


def test_edge_cases():
    e = _entries(EDGE)
    overlap, pm = assert_same(e, _pm_of(e))
    by = dict(zip(e["entry_id"] + "/" + e["staff_id"].fillna("-"), overlap))
    assert by["C9/S1"] == 0 and by["C10/S1"] == 10  # C9 before C10 in natural order
    assert by["T2/S2"] == 10 and by["T3/S2"] == 10 and by["T4/S2"] == 0
    assert by["T5/S2"] == 0 and by["T6/S2"] == 0 and by["T11/-"] == 0
    assert by["C2/S6"] == 0 and by["C10/S6"] == 10 and by["C100/S6"] == 20
    jan = pm[(pm["patient_id"] == "P1") & (pm["mkey"] == 2026 * 12)].iloc[0]
    assert jan["documented_minutes"] == 20 + 30 + 10 + 12 + 5 + 30  # the NaN duration adds nothing
    assert pm["date_20min"].notna().all()


def test_edge_cases_in_another_row_order():
    """The log's order is the last tie-break: reversed and shuffled logs agree with pandas too."""
    e = _entries(EDGE)
    for order in (np.arange(len(e))[::-1], np.random.default_rng(3).permutation(len(e))):
        x = e.iloc[order].reset_index(drop=True)
        assert_same(x, _pm_of(x))


def test_fractional_minutes_and_large_months():
    """Minutes in tenths (not exact in binary: the sums and running totals must add in the engine's order and
    precision) and months of hundreds of entries."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(6000):
        start, q = int(rng.integers(0, 1400)), float(rng.integers(1, 400)) / 10
        rows.append((f"E{i}", f"P{rng.integers(0, 10)}", f"S{rng.integers(0, 5)}", f"2026-03-{rng.integers(1, 29):02d}", start,
                     start + int(rng.integers(1, 40)), q + 0.3, q, q * 0.3 if i % 3 else 0.0))
    e = _entries(rows)
    overlap, pm = assert_same(e, _pm_of(e))
    assert (overlap > 0).sum() > 100 and pm["date_120min"].notna().all()


def test_empty_entries():
    e = _entries([])
    assert_same(e, _pm_of(e).astype({"patient_id": "string"}))


@pytest.mark.parametrize("months", [4, 5000])  # few months: a table addressed by the pair; thousands: a hash lookup
def test_each_entrys_patient_month_is_the_one_an_sql_join_finds(months):
    """month_minutes finds each entry's patient-month on integer keys (sqlfacts.patient_month_rows) instead of joining: the same
    row an inner join on (patient code, month key) finds, none for a missing month key, and an unknown patient (code
    -1) matched like any other code."""
    rng = np.random.default_rng(7)
    pairs = pd.DataFrame({"p": rng.integers(-1, 40, 300), "m": rng.integers(24000, 24000 + months, 300)}).drop_duplicates()
    pairs = pairs.sample(frac=1, random_state=1).reset_index(drop=True)
    left = pd.DataFrame({"p": rng.integers(-1, 45, 2000), "m": rng.integers(24000, 24000 + months, 2000)})
    left.loc[rng.random(2000) < 0.05, "m"] = -1
    left = pd.concat([left, pairs.sample(100, random_state=2)], ignore_index=True)  # some certain hits
    got = sqlfacts.patient_month_rows(left["p"].to_numpy(), left["m"].to_numpy(), pairs["p"].to_numpy(), pairs["m"].to_numpy())
    want = left.assign(_l=np.arange(len(left))).merge(pairs.assign(_r=np.arange(len(pairs))), on=["p", "m"], how="left")
    want = want[want["m"] >= 0].set_index("_l")["_r"].reindex(np.arange(len(left))).fillna(-1).astype("int64").to_numpy()
    assert np.array_equal(got, want)
    assert (got >= 0).sum() >= 100 and (got[left["p"].to_numpy() == -1] >= 0).any()
    empty = np.zeros(0, dtype="int64")
    assert len(sqlfacts.patient_month_rows(empty, empty, pairs["p"].to_numpy(), pairs["m"].to_numpy())) == 0
    assert (sqlfacts.patient_month_rows(left["p"].to_numpy(), left["m"].to_numpy(), empty, empty) == -1).all()


# --------------------------------------------------------------------------- commencement (catalog v3) on DuckDB
def _commencement_both(f, extra_who=None):
    """facts.commencement_dates (one DuckDB query) and the pandas code it replaced (facts._commencement_dates) on the
    facts' consents and CCM claims, for every (patient-month, billing NPI) of the lines, every patient-month for any
    practitioner and ``extra_who``; the two frames must be equal, value for value and dtype for dtype."""
    from ccmlib.engine.facts import _commencement_dates, commencement_dates

    ccm = f.claims[f.claims["cpt_code"].isin(["99490", "99439", "99487", "99489", "99491", "99437", "G0506", "G0511"])]
    who = pd.concat([f.lines[PM + ["billing_npi"]], f.pm[PM].assign(billing_npi=pd.Series(pd.NA, index=f.pm.index, dtype="string")),
                     *([extra_who] if extra_who is not None else [])], ignore_index=True)
    got = commencement_dates(f.consents, ccm, who)
    w = who[PM + ["billing_npi"]].drop_duplicates().reset_index(drop=True)
    w["billing_npi"] = w["billing_npi"].astype("string")
    want = _commencement_dates(f.consents, ccm, w)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    return got


def test_commencement_on_duckdb_is_the_pandas_codes(demo_facts, synth_facts):
    for f in (demo_facts, synth_facts):
        got = _commencement_both(f)
        assert got["commencement"].notna().sum() > 0
    assert got["reset"].notna().sum() > 0  # the generated practice has spans restarted after a revocation


def test_commencement_edge_cases_on_duckdb_are_the_pandas_codes():
    """Revocations of consents that cover the practitioner or not (practice-level, another's), a consent dated in the
    revocation month, a consent without a date, claims by another practitioner, before and after a boundary, and a
    practitioner who never billed the patient."""
    from ccmlib.synth.examples import NPI, OTHER_NPI, chart, claim, practice

    c = chart()
    base = c["consents"][0]
    c["consents"] = [dict(base, consent_date="2025-01-01", revoked_date="2025-06-10"),
                     dict(base, consent_date="2025-06-20"),  # in the revocation month: coverage never lapsed
                     dict(base, consent_date="2025-03-01", practitioner_npi=OTHER_NPI, revoked_date="2025-09-05"),
                     dict(base, consent_date="2025-04-01", practitioner_npi="", revoked_date="2025-11-30"),
                     dict(base, consent_date="2025-12-15"),
                     dict(base, consent_date="")]
    c["claims"] = [claim("C0", "99490", date="2025-02-10"), claim("C1", "99490", date="2025-10-10"),
                   dict(claim("C2", "99490", date="2025-12-01"), billing_npi=OTHER_NPI), claim("C3", "99490")]
    f = build_facts(practice(c), None)
    # every practitioner in January 2026 and in October 2025 (after the other's revocation in September, whose month
    # ends no span: the practice-level consent of April, revoked only in November, is the one in force then)
    january, october = 2026 * 12, 2025 * 12 + 9
    extra = pd.DataFrame({"patient_id": f.pm["patient_id"].iloc[:1].tolist() * 6, "mkey": [january] * 3 + [october] * 3,
                          "billing_npi": pd.Series([OTHER_NPI, "1999999999", NPI] * 2, dtype="string")})
    extra["patient_id"] = extra["patient_id"].astype(f.pm["patient_id"].dtype)
    got = _commencement_both(f, extra)
    # a practitioner never billing, covered only by the practice-level consent revoked in November: no commencement after
    assert got.loc[got["billing_npi"] == "1999999999", "commencement"].isna().tolist() == [True, False]
    other = got[got["billing_npi"] == OTHER_NPI].set_index("mkey")
    assert other.loc[october, "reset"] is pd.NaT and other.loc[january, "reset"] == pd.Timestamp("2025-11-30")


def test_visit_evidence_on_duckdb_is_the_pandas_codes(demo_facts, synth_facts):
    """IV-01's visit found in the window (one DuckDB query) is the pandas merge it replaced (facts._visit_found), for
    every (patient-month, billing NPI) of the lines and for any practitioner (REV-01's question)."""
    from ccmlib.engine.facts import _visit_found, _visits, initiating_visit_status

    for f in (demo_facts, synth_facts):
        for who in (f.lines[PM + ["billing_npi"]], f.pm[PM].assign(billing_npi=pd.Series(pd.NA, index=f.pm.index, dtype="string"))):
            st = initiating_visit_status(f, who)
            want = _visit_found(st, _visits(f))
            assert st["visit_found"].tolist() == want.tolist()
            assert 0 < want.sum() < len(want)  # visits found and not found


@pytest.mark.parametrize("visit_npi, found", [("", True), ("OTHER", False), ("NPI", True)])
def test_a_visit_without_a_practitioner_counts_for_any_on_duckdb(visit_npi, found):
    """An encounter row without practitioner_npi is a visit by any practitioner (catalog v3); one by another
    practitioner is not the billing practitioner's: on DuckDB as in the pandas code."""
    from ccmlib.engine.facts import _visit_found, _visits, initiating_visit_status
    from ccmlib.synth.examples import NPI, OTHER_NPI, chart, practice

    c = chart()
    c["encounters"] = [dict(e, practitioner_npi={"": "", "OTHER": OTHER_NPI, "NPI": NPI}[visit_npi]) for e in c["encounters"]]
    f = build_facts(practice(c), None)
    st = initiating_visit_status(f, f.lines[PM + ["billing_npi"]])
    assert st["visit_found"].tolist() == [found] == _visit_found(st, _visits(f)).tolist()


def _consents_both(f, who):
    from ccmlib.engine.facts import _consents_in_force, consents_in_force

    got = consents_in_force(f.consents, who)
    w = who.reset_index(drop=True).assign(_w=lambda d: np.arange(len(d)))
    cols = ["consent_date", "practitioner_npi", "informed_cost_sharing", "informed_one_practitioner", "informed_right_to_stop",
            "informed_availability", "revoked_date"]
    pd.testing.assert_frame_equal(got, _consents_in_force(f.consents, w, cols), check_exact=True)
    return got


def test_the_consent_in_force_on_duckdb_is_the_pandas_codes(demo_facts, synth_facts):
    """The consent in force per (patient-month, billing NPI; any for an unbilled month), with the counts before and the
    other practitioners named (one DuckDB query), is the pandas code it replaced (facts._consents_in_force)."""
    for f in (demo_facts, synth_facts):
        who = f.consent_status[PM + ["billing_npi", "ref_date"]]
        got = _consents_both(f, who)
        assert got["consent_date"].notna().any() and got["consent_date"].isna().any() and (got["other_npis"] != "").any()


def test_patient_ids_listing_their_categories_in_another_order_are_not_joined_on_codes(demo_facts):
    """pandas calls two unordered categoricals equal when they list the same categories in another order, but their
    codes differ: the queries must not join such columns on codes (the pandas code answers them)."""
    who = demo_facts.consent_status[PM + ["billing_npi", "ref_date"]]
    pid = who["patient_id"]
    flipped = pid.cat.reorder_categories(pid.cat.categories[::-1])
    assert flipped.dtype == pid.dtype and not sqlfacts._shared_patients(flipped, demo_facts.consents["patient_id"])
    got = _consents_both(demo_facts, who.assign(patient_id=flipped))
    pd.testing.assert_frame_equal(got.drop(columns="patient_id"), _consents_both(demo_facts, who).drop(columns="patient_id"))


def test_consent_in_force_edge_cases_on_duckdb_are_the_pandas_codes():
    """Two consents of one date (the later row wins), a practice-level consent, two other practitioners (named in
    order), a consent dated after the reference date, and a row without a reference date."""
    from ccmlib.synth.examples import NPI, OTHER_NPI, chart, practice

    c = chart()
    base = c["consents"][0]
    c["consents"] = [dict(base, consent_date="2025-05-01", informed_availability="no"), dict(base, consent_date="2025-05-01"),
                     dict(base, consent_date="2025-04-01", practitioner_npi=""),
                     dict(base, consent_date="2025-03-01", practitioner_npi="1999999999"),
                     dict(base, consent_date="2025-02-01", practitioner_npi=OTHER_NPI),
                     dict(base, consent_date="2026-06-01")]
    f = build_facts(practice(c), None)
    p = f.pm["patient_id"].iloc[:1].tolist() * 5
    who = pd.DataFrame({"patient_id": pd.Series(p, dtype=f.pm["patient_id"].dtype), "mkey": [2026 * 12] * 4 + [2025 * 12 + 3],
                        "billing_npi": pd.Series([NPI, pd.NA, OTHER_NPI, NPI, NPI], dtype="string"),
                        "ref_date": pd.to_datetime(["2026-01-31", "2026-01-31", "2026-01-31", None, "2025-04-01"]).astype("datetime64[ns]")})
    got = _consents_both(f, who)
    assert got["other_npis"].tolist() == [f"{OTHER_NPI}, 1999999999", "", f"{NPI}, 1999999999", "", f"{OTHER_NPI}, 1999999999"]
    assert got["informed_availability"].tolist()[:1] == [True] and got["consents_before"].tolist() == [5, 5, 5, 0, 3]
    assert got["practitioner_npi"].isna().tolist()[-1]  # dated on the reference date: the practice-level consent


def _facts_both_ways(p, period, monkeypatch):
    """build_facts with the chronic categories and the care plans in force found by DuckDB, and by the pandas code it
    replaced (facts._conditions_and_plans): the patient-months and the categories must be equal."""
    from ccmlib.engine import facts as F

    got = build_facts(p, period)
    with monkeypatch.context() as m:
        m.setattr(F, "sql_conditions_and_plans", lambda *a: None)
        want = build_facts(p, period)
    pd.testing.assert_frame_equal(got.pm, want.pm, check_exact=True)
    pd.testing.assert_frame_equal(got.conditions, want.conditions, check_exact=True)
    return got


def test_conditions_and_care_plans_on_duckdb_are_the_pandas_codes(monkeypatch):
    from ccmlib.intake.load import load_practice
    from ccmlib.synth.examples import practice
    from ccmlib.synth.generator import build, parse_rates

    t = build(300, "2026-01..2026-03", 11, parse_rates(["0.03"]))
    t.pop("truth")
    for p in (load_practice(Path(__file__).resolve().parents[1] / "data" / "demo"),
              practice({k: v.astype(str).replace({"nan": ""}).to_dict("records") for k, v in t.items()})):
        f = _facts_both_ways(p, None, monkeypatch)
        assert f.pm["chronic_conditions"].between(1, 1).any() and (f.pm["chronic_conditions"] >= 2).any()
        assert f.pm["plan_id"].notna().any() and f.pm["plan_id"].isna().any()


def test_condition_and_care_plan_edge_cases_on_duckdb_are_the_pandas_codes(monkeypatch):
    """A diagnosis resolved on the month's first day (active) and one the day before (not), an onset on the month's
    last day (active) and one the day after (not), two diagnoses of one category; two plans created on the month's last
    day (the later row in force) and one after it."""
    from ccmlib.synth.examples import chart, practice

    c = chart()
    d = c["diagnoses"][0]
    c["diagnoses"] = [dict(d, icd10_code="E119", onset_date="2024-01-01", resolved_date=""),
                      dict(d, icd10_code="E1165", onset_date="2024-01-01", resolved_date=""),
                      dict(d, icd10_code="J449", onset_date="2024-01-01", resolved_date="2026-01-01"),
                      dict(d, icd10_code="N184", onset_date="2024-01-01", resolved_date="2025-12-31"),
                      dict(d, icd10_code="I10", onset_date="2026-01-31", resolved_date=""),
                      dict(d, icd10_code="F200", onset_date="2026-02-01", resolved_date="")]
    cp = c["care_plans"][0]
    c["care_plans"] = [dict(cp, plan_id="A", created_date="2025-12-01"), dict(cp, plan_id="B", created_date="2026-01-31"),
                       dict(cp, plan_id="C", created_date="2026-01-31"), dict(cp, plan_id="D", created_date="2026-02-01")]
    f = _facts_both_ways(practice(c), None, monkeypatch)
    jan = f.pm[f.pm["service_month"] == "2026-01"].iloc[0]
    assert jan["chronic_conditions"] == 3 and jan["plan_id"] == "C"  # diabetes, COPD, hypertension


# --------------------------------------------------------------------------- the judged consent (CONS-05) on DuckDB
def _episode_both(patient_id, dates, consents, npi=None) -> pd.DataFrame:
    """facts.consent_episode (the judged consent found by one DuckDB query) and the pandas code it replaced
    (facts._consent_episode): the DuckDB path is taken, and the two frames are equal, value, dtype and index."""
    from ccmlib.engine.facts import _consent_episode, consent_episode

    assert sqlfacts.consent_judged(patient_id, dates, npi, consents) is not None
    got = consent_episode(patient_id, dates, consents, npi)
    pd.testing.assert_frame_equal(got, _consent_episode(patient_id, dates, consents, npi), check_exact=True)
    return got


def _episode_rows(f) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(patient, date, practitioner) rows of a practice: every time entry with its month's judged practitioner, and per
    consent its own date, its revocation date, the last day of that month and the day after, for its practitioner and
    for the practice (<NA>); the rows of consents without a patient left out."""
    from ccmlib.engine.facts import _month_end

    e, c = f.entries, f.consents[f.consents["patient_id"].notna().to_numpy()]
    end = _month_end(c["revoked_date"])
    dates = [e["activity_date"], c["consent_date"], c["revoked_date"], end, end + pd.Timedelta(days=1)]
    npis = [e["judged_npi"].astype("string")] + [c["practitioner_npi"].astype("string")] * 4
    pid = pd.concat([e["patient_id"]] + [c["patient_id"]] * 8, ignore_index=True)
    npi = pd.concat(npis + [pd.Series(pd.NA, index=c.index, dtype="string")] * 4, ignore_index=True)
    return pid, pd.concat(dates + dates[1:], ignore_index=True).astype("datetime64[ns]"), npi


def test_the_judged_consent_on_duckdb_is_the_pandas_codes(demo_facts, synth_facts):
    """The judged consent's revocation per (patient, date, practitioner) of the entries and around every consent and
    revocation (one DuckDB query) is the pandas code it replaced, for the practitioner and for any; also with the
    consents in reverse order (a consent's row is its line, not its place) and without their line numbers."""
    for f in (demo_facts, synth_facts):
        pid, dates, npi = _episode_rows(f)
        for consents in (f.consents, f.consents.iloc[::-1], f.consents.drop(columns="_line")):
            for who in (npi, None):
                got = _episode_both(pid, dates, consents, who)
                assert got["after_revocation"].any() and (got["revoked_date"].notna() & ~got["after_revocation"]).any()


def _consents(rows) -> pd.DataFrame:
    """Consents (patient_id, consent_date, practitioner_npi, revoked_date) as build_facts holds them, numbered by line."""
    c = pd.DataFrame(rows, columns=["patient_id", "consent_date", "practitioner_npi", "revoked_date"])
    return pd.DataFrame({"patient_id": pd.Categorical(c["patient_id"], categories=[f"P{k}" for k in range(1, 9)]),
                         "consent_date": pd.to_datetime(c["consent_date"]).astype("datetime64[ns]"),
                         "practitioner_npi": c["practitioner_npi"].astype("string"),
                         "revoked_date": pd.to_datetime(c["revoked_date"]).astype("datetime64[ns]"),
                         "_line": np.arange(2, len(c) + 2)})


def _day_texts(s: pd.Series) -> list[str]:
    return s.dt.strftime("%Y-%m-%d").fillna("-").tolist()


def test_judged_consent_edge_cases_on_duckdb_are_the_pandas_codes():
    """Two consents on one date (the later row is judged, whichever of them is revoked), a covering practice-level
    consent against a later revoked consent of another practitioner, no covering consent (the latest of any), no
    practitioner (the latest of any), a date before every consent, a date on a consent's date, a missing date, a consent
    without a date, a patient without consents, and revocations in the date's month (not after), on its last day and
    in the month before (after); the consents also in reverse row order and without line numbers."""
    from ccmlib.synth.examples import NPI, OTHER_NPI

    third = "1999999999"
    consents = _consents([
        ("P1", "2025-05-01", NPI, "2025-05-15"), ("P1", "2025-05-01", NPI, None),  # one date: the second row is judged
        ("P1", "2025-08-01", NPI, None), ("P1", "2025-08-01", NPI, "2025-08-10"),  # one date: the second, revoked
        ("P2", "2025-02-01", None, None), ("P2", "2025-06-01", OTHER_NPI, "2025-06-10"),  # practice-level, then another's
        ("P3", "2025-01-01", OTHER_NPI, None), ("P3", "2025-03-01", third, "2025-03-05"),  # none covers NPI
        ("P4", "2025-01-01", NPI, None), ("P4", None, NPI, "2025-04-02"),  # the undated consent is never judged
        ("P5", "2025-01-01", NPI, "2025-06-10"), ("P5", "2025-08-01", NPI, None),  # a new consent on August 1st
        ("P6", "2025-01-01", None, "2025-03-31"), ("P6", "2025-02-01", OTHER_NPI, None),  # revoked on the month's last day
        ("P8", "2025-01-01", NPI, "2025-01-20")])  # another patient's revocation
    rows = [  # (patient, date, practitioner, revoked_date, after_revocation)
        ("P1", "2025-07-01", NPI, None, False), ("P1", "2025-07-01", None, None, False), ("P1", "2025-05-01", NPI, None, False),
        ("P1", "2025-09-15", NPI, "2025-08-10", True), ("P1", "2025-08-31", None, "2025-08-10", False),
        ("P1", "2025-04-30", NPI, None, False), ("P1", None, NPI, None, False), ("P1", None, None, None, False),
        ("P2", "2025-08-01", NPI, None, False), ("P2", "2025-08-01", None, "2025-06-10", True),
        ("P2", "2025-08-01", OTHER_NPI, "2025-06-10", True), ("P2", "2025-05-31", OTHER_NPI, None, False),
        ("P3", "2025-05-01", NPI, "2025-03-05", True), ("P3", "2025-02-01", NPI, None, False),
        ("P3", "2025-05-01", OTHER_NPI, None, False), ("P3", "2025-03-31", third, "2025-03-05", False),
        ("P4", "2025-06-01", NPI, None, False), ("P4", "2024-12-31", NPI, None, False),
        ("P5", "2025-06-15", NPI, "2025-06-10", False), ("P5", "2025-06-30", NPI, "2025-06-10", False),
        ("P5", "2025-07-01", NPI, "2025-06-10", True), ("P5", "2025-07-31", None, "2025-06-10", True),
        ("P5", "2025-08-01", NPI, None, False), ("P5", "2025-08-01", None, None, False),
        ("P6", "2025-04-01", NPI, "2025-03-31", True), ("P6", "2025-03-31", NPI, "2025-03-31", False),
        ("P6", "2025-04-01", OTHER_NPI, None, False), ("P6", "2025-04-01", None, None, False),
        ("P7", "2025-04-01", NPI, None, False)]
    w = pd.DataFrame(rows, columns=["patient_id", "date", "npi", "revoked_date", "after"])
    pid = pd.Series(pd.Categorical(w["patient_id"], dtype=consents["patient_id"].dtype), index=np.arange(len(w))[::-1])
    dates = pd.to_datetime(w["date"]).astype("datetime64[ns]")
    npi = w["npi"].astype("string")
    for c in (consents, consents.iloc[::-1], consents.drop(columns="_line")):
        got = _episode_both(pid, dates, c, npi)
        pd.testing.assert_series_equal(got["revoked_date"], pd.to_datetime(w["revoked_date"]).astype("datetime64[ns]"))
        assert got["after_revocation"].tolist() == w["after"].tolist()
    # without line numbers a consent's row is its place: in reverse order the other consent of each date is judged
    got = _episode_both(pid, dates, consents.drop(columns="_line").iloc[::-1], npi)
    assert _day_texts(got["revoked_date"].iloc[[0, 3]]) == ["2025-05-15", "-"]
    # no practitioner at all: the latest consent of any, every row
    got = _episode_both(pid, dates, consents, None)
    assert _day_texts(got["revoked_date"].iloc[[1, 8, 9, 12, 24]]) == ["-", "2025-06-10", "2025-06-10", "2025-03-05", "-"]


def test_judged_consent_without_rows_or_dated_consents_and_with_other_patient_ids():
    """No rows, only undated consents, no consents: the same empty or blank frames as the pandas code. Patient ids that
    are text, or categoricals listing their categories in another order, are answered by the pandas code."""
    from ccmlib.engine.facts import _consent_episode, consent_episode

    consents = _consents([("P1", "2025-01-01", None, "2025-02-03"), ("P2", "2025-01-01", "1234567893", None)])
    pid = pd.Series(pd.Categorical(["P1", "P2"], dtype=consents["patient_id"].dtype))
    dates = pd.Series(pd.to_datetime(["2025-03-01", "2025-03-01"])).astype("datetime64[ns]")
    _episode_both(pid.iloc[:0], dates.iloc[:0], consents)
    _episode_both(pid, dates, consents.assign(consent_date=pd.NaT).astype({"consent_date": "datetime64[ns]"}))
    _episode_both(pid, dates, consents.iloc[:0])
    assert _episode_both(pid, dates, consents)["after_revocation"].tolist() == [True, False]
    text = pid.astype("string")
    assert sqlfacts.consent_judged(text, dates, None, consents) is None
    pd.testing.assert_frame_equal(consent_episode(text, dates, consents), _consent_episode(pid, dates, consents))
    flipped = pid.cat.reorder_categories(pid.cat.categories[::-1])
    assert flipped.dtype == consents["patient_id"].dtype and sqlfacts.consent_judged(flipped, dates, None, consents) is None
    pd.testing.assert_frame_equal(consent_episode(flipped, dates, consents), _consent_episode(pid, dates, consents))


# --------------------------------------------------------------------------- the month's judged practitioner on DuckDB
def _practitioner_both(lines, consents, keys) -> pd.Series:
    """facts.month_practitioner (one DuckDB query) and the pandas code it replaced (facts._month_practitioner): the
    DuckDB path is taken, and the two are equal, value, dtype and index."""
    from ccmlib.engine.facts import _month_practitioner, month_practitioner

    assert len(keys) == 0 or sqlfacts.month_practitioner(keys, lines, consents) is not None
    got = month_practitioner(lines, consents, keys)
    pd.testing.assert_series_equal(got, _month_practitioner(lines, consents, keys), check_exact=True)
    return got


def _month_keys(f) -> list[pd.DataFrame]:
    """The (patient_id, mkey) a practice's months are judged for: the distinct patient-months of the time entries, as
    entry_store asks (mkey Int64; numbered backwards), and every patient-month of the facts (mkey int64), repeated."""
    from ccmlib.intake.fastops import distinct_rows

    e = f.entries
    _, first = distinct_rows(e["patient_id"], e["mkey"])
    ek = pd.DataFrame({"patient_id": e["patient_id"].take(first).array, "mkey": e["mkey"].take(first).array},
                      index=np.arange(len(first))[::-1])
    return [ek, pd.concat([f.pm[PM], f.pm[PM].iloc[::3]])]


def test_the_months_practitioner_on_duckdb_is_the_pandas_codes(demo_facts, synth_facts):
    """The practitioner each month's time is judged against, per patient-month of the entries and of the facts (one
    DuckDB query), is the pandas code it replaced: the month's first billing practitioner, else the latest consent's;
    also with the lines and the consents in reverse order, the lines without their claims' natural order (computed from
    claim_id), the consents without their line numbers, without lines and without consents."""
    for f in (demo_facts, synth_facts):
        ccm = f.lines
        for keys in _month_keys(f):
            got = _practitioner_both(ccm, f.consents, keys)
            line, consent = sqlfacts.month_practitioner(keys, ccm, f.consents)
            # months of a billing practitioner, months judged against a consent's, months of none (<NA>)
            assert (line >= 0).sum() > 0 and (consent >= 0).sum() > 0 and got.isna().sum() > 0
            for lines, consents in ((ccm.iloc[::-1], f.consents.iloc[::-1]), (ccm, f.consents.drop(columns="_line")),
                                    (ccm.drop(columns="_claim_order"), f.consents), (None, f.consents), (ccm.iloc[:0], f.consents),
                                    (ccm, f.consents.iloc[:0])):
                _practitioner_both(lines, consents, keys)


def _lines(rows) -> pd.DataFrame:
    """CCM claim lines (claim_id, line, patient_id, billing_npi, service_date, cpt_code) as build_facts holds them: the
    patients on the categories of :func:`_consents`, the month key of the service date, the claims' natural order."""
    from ccmlib.engine.periods import month_key

    ln = pd.DataFrame(rows, columns=["claim_id", "line", "patient_id", "billing_npi", "service_date", "cpt_code"])
    day = pd.to_datetime(ln["service_date"]).astype("datetime64[ns]")
    out = pd.DataFrame({"claim_id": ln["claim_id"].astype("string"), "line": pd.array(ln["line"].astype(object), dtype="Int64"),
                        "patient_id": pd.Categorical(ln["patient_id"], categories=[f"P{k}" for k in range(1, 9)]),
                        "billing_npi": ln["billing_npi"].astype("string"), "service_date": day,
                        "cpt_code": ln["cpt_code"].astype("string"), "mkey": month_key(day)})
    out["_claim_order"] = natural_key(out["claim_id"])
    return out


def test_months_practitioner_edge_cases_on_duckdb_are_the_pandas_codes():
    """Two lines of one date (the claim in natural order decides, C9 before C10, then the line), G0506 with another code
    (the other wins though later) and alone, a line without a line number or a claim id (after the others), a first
    line without a billing NPI (the consent's practitioner, not the next line's), a line without a date; months without
    lines judged against the latest consent (two of one date: the later row; one dated on the month's last day counts,
    one the next day does not; an undated one never), a practice-level latest consent, a consent after the month, a
    missing month key, a patient without consents or lines; the lines and consents also in reverse row order, without
    the claims' natural order or line numbers, and the month keys as floats; consents sharing a line number; a line
    with a month key but no date (after the dated ones)."""
    from ccmlib.synth.examples import NPI as A, OTHER_NPI as B

    C = "1999999999"
    lines = _lines([
        ("C10", 1, "P1", A, "2026-01-05", "99490"), ("C9", 2, "P1", B, "2026-01-05", "99439"),  # C9 first, natural order
        ("C1", 1, "P1", C, "2026-01-06", "99490"),  # a later day: after both whatever its claim
        ("C20", 2, "P1", A, "2026-02-10", "99490"), ("C20", 1, "P1", B, "2026-02-10", "99439"),  # one claim: line 1 first
        ("C21", 1, "P1", C, "2026-02-11", "99490"), ("C30", 1, "P1", A, None, "99490"),  # no date: no month
        ("C40", 1, "P2", A, "2026-01-03", "G0506"), ("C41", 1, "P2", B, "2026-01-20", "99490"),  # G0506 after any other
        ("C42", 1, "P2", C, "2026-01-25", "99490"), ("C43", 1, "P2", A, "2026-02-07", "G0506"),  # G0506 alone
        ("C44", None, "P2", A, "2026-03-02", "99490"), ("C44", 3, "P2", B, "2026-03-02", "99490"),  # no line number: last
        ("C50", 1, "P5", None, "2026-01-04", "99490"), ("C51", 1, "P5", B, "2026-01-09", "99490"),  # the first names no one
        (None, 1, "P5", A, "2026-02-04", "99490"), ("C52", 1, "P5", B, "2026-02-04", "99490"),  # no claim id: last
        ("C53", 1, "P5", A, "2026-03-04", "99490"), ("C53", 1, "P5", B, "2026-03-04", "99490"),  # the same line twice
        ("C45", 1, "P2", A, None, "99490"), ("C46", 1, "P2", B, "2026-04-10", "99490"),  # no date (April's key): last
        ("C60", 1, "P8", C, "2026-01-05", "99490")])  # another patient's
    lines.loc[lines["claim_id"] == "C45", "mkey"] = 2026 * 12 + 3  # a month key without a date (not as build_facts makes them)
    consents = _consents([
        ("P1", "2025-06-01", C, None),
        ("P3", "2025-12-01", A, None), ("P3", "2025-12-01", B, "2026-01-10"),  # one date: the later row
        ("P3", "2026-02-28", C, None), ("P3", "2026-03-01", A, None), ("P3", None, B, None),  # February's last day, the next
        ("P4", "2025-06-01", A, None), ("P4", "2025-09-01", None, None),  # a practice-level latest consent
        ("P5", "2025-01-01", C, None), ("P7", "2026-02-01", A, None)])
    jan, feb, mar, apr = 2026 * 12, 2026 * 12 + 1, 2026 * 12 + 2, 2026 * 12 + 3
    rows = [("P1", jan, B), ("P1", feb, B), ("P1", None, None), ("P1", apr, C), ("P2", jan, B), ("P2", feb, A), ("P2", mar, B),
            ("P2", apr, B), ("P3", jan, B), ("P3", feb, C), ("P3", mar, A), ("P4", jan, None), ("P5", jan, C), ("P5", feb, B),
            ("P5", mar, A), ("P6", jan, None), ("P7", jan, None), ("P7", feb, A), ("P1", jan, B)]
    keys = pd.DataFrame({"patient_id": pd.Categorical([r[0] for r in rows], dtype=consents["patient_id"].dtype),
                         "mkey": pd.array([r[1] for r in rows], dtype="Int64")}, index=np.arange(len(rows))[::-1] * 2)
    want = [r[2] for r in rows]
    texts = lambda s: s.astype(object).where(s.notna(), None).tolist()  # noqa: E731
    for reverse, ln in ((False, lines), (True, lines.iloc[::-1]), (False, lines.drop(columns="_claim_order"))):
        for c in (consents, consents.iloc[::-1], consents.drop(columns="_line")):
            for k in (keys, keys.astype({"mkey": "float64"})):
                got = _practitioner_both(ln, c, k)
                assert got.index.equals(keys.index)
                assert texts(got) == (want[:14] + [B] + want[15:] if reverse else want)
    # (in reverse order the other of two identical lines is first); without line numbers a consent's row is its place,
    # and so it is among consents of one date and one line number
    assert texts(_practitioner_both(lines, consents.drop(columns="_line").iloc[::-1], keys))[8] == A
    same = consents.assign(_line=2)
    assert texts(_practitioner_both(lines, same, keys))[8] == B and texts(_practitioner_both(lines, same.iloc[::-1], keys))[8] == A
    # without lines: every month is judged against the latest consent
    assert texts(_practitioner_both(None, consents, keys)) == [C, C, None, C, None, None, None, None, B, C, A, None, C, C, C, None,
                                                               None, A, C]


def test_months_practitioner_without_keys_or_consents_and_with_other_patient_ids():
    """No keys, no consents, only undated consents, no lines: the same empty or blank series as the pandas code.
    Patient ids that are text, lines on another category list, categoricals listing their categories in another order,
    or a key without a patient are answered by the pandas code."""
    from ccmlib.engine.facts import _month_practitioner, month_practitioner

    lines = _lines([("C1", 1, "P1", "1234567893", "2026-01-05", "99490"), ("C2", 1, "P2", "1093817465", "2026-02-05", "99490")])
    consents = _consents([("P1", "2025-01-01", None, None), ("P3", "2025-01-01", "1999999999", None)])
    keys = pd.DataFrame({"patient_id": pd.Categorical(["P1", "P2", "P3", "P3"], dtype=consents["patient_id"].dtype),
                         "mkey": pd.array([24312, 24312, 24312, 24313], dtype="Int64")})
    _practitioner_both(lines, consents, keys.iloc[:0])
    assert _practitioner_both(lines, consents.iloc[:0], keys).isna().tolist() == [False, True, True, True]
    undated = consents.assign(consent_date=pd.NaT).astype({"consent_date": "datetime64[ns]"})
    assert _practitioner_both(None, undated, keys).isna().all() and _practitioner_both(lines.iloc[:0], undated, keys).isna().all()
    assert _practitioner_both(lines, consents, keys).tolist() == ["1234567893", pd.NA, "1999999999", "1999999999"]
    want = _month_practitioner(lines, consents, keys)
    text = keys.assign(patient_id=keys["patient_id"].astype("string"))
    other = lines.assign(patient_id=lines["patient_id"].cat.add_categories(["P9"]))
    flipped = keys.assign(patient_id=keys["patient_id"].cat.reorder_categories(keys["patient_id"].cat.categories[::-1]))
    assert flipped["patient_id"].dtype == keys["patient_id"].dtype
    nobody = keys.assign(patient_id=pd.Categorical(["P1", None, "P3", "P3"], dtype=consents["patient_id"].dtype))
    for ln, k in ((lines, text), (other, keys), (lines, flipped), (lines, nobody)):
        assert sqlfacts.month_practitioner(k, ln, consents) is None
        pd.testing.assert_series_equal(month_practitioner(ln, consents, k), _month_practitioner(ln, consents, k), check_exact=True)
        if k is not nobody:
            pd.testing.assert_series_equal(month_practitioner(ln, consents, k), want, check_exact=True)


def _database_threads() -> int:
    con = sqlfacts._connect()
    try:
        return int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    finally:
        con.close()


def test_an_audits_queries_run_in_one_thread_on_a_small_log_and_in_two_on_a_large_one_with_the_same_facts(monkeypatch):
    from ccmlib.intake.load import load_practice
    demo = load_practice(Path(__file__).resolve().parents[1] / "data" / "demo")
    monkeypatch.setattr(sqlfacts, "usable_cores", lambda: 2)
    small = build_facts(demo, None)
    assert _database_threads() == 1
    monkeypatch.setattr(sqlfacts, "PARALLEL_QUERIES_FROM", len(small.entries))  # the demo's log counts as large
    large = build_facts(demo, None)
    assert _database_threads() == 2
    pd.testing.assert_frame_equal(large.entries, small.entries, check_exact=True)
    pd.testing.assert_frame_equal(large.pm, small.pm, check_exact=True)
    monkeypatch.setattr(sqlfacts, "usable_cores", lambda: 1)  # one core: one thread, whatever the size
    build_facts(demo, None)
    assert _database_threads() == 1
