"""Facts on integer keys (issue #23) equal the text path each function takes for ids of any other kind: CCM
commencement's first claim per (patient, practitioner) (named and any-practitioner rows, claims without a practitioner
or a date, patients with no claim, a missing patient), the period's patient-months (a missing patient, a patient
only on claims), the visit status's commencement lookup and a patient-month's first or last claim date."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccmlib.engine.facts import _first_claims, patient_month_rows_of


def _frames(categorical: bool):
    pats = ["P1", "P2", "P3", "P10", None]
    cats = pd.CategoricalDtype(sorted(p for p in pats if p))
    w = pd.DataFrame({"_w": [10, 11, 12, 13, 14, 15, 16, 17],
                      "patient_id": ["P1", "P1", "P2", "P2", "P3", "P10", None, "P10"],
                      "billing_npi": pd.array(["111", None, "222", "999", None, "111", "111", None], dtype="string")})
    k = pd.DataFrame({"patient_id": ["P1", "P1", "P1", "P2", "P2", "P10", None, "P2"],
                      "claim_npi": pd.array(["111", "111", "333", "222", None, "111", "111", "222"], dtype="string"),
                      "service_date": pd.to_datetime(["2026-02-03", "2026-01-20", "2026-01-05", "2026-03-01", "2025-12-01",
                                                      None, "2026-01-01", "2026-02-11"])})
    if categorical:
        w["patient_id"] = w["patient_id"].astype(cats)
        k["patient_id"] = k["patient_id"].astype(cats)
    else:
        w["patient_id"] = w["patient_id"].astype("string")
        k["patient_id"] = k["patient_id"].astype("string")
    return w, k


def test_integer_keys_give_the_text_path():
    got = _first_claims(*_frames(categorical=True))
    want = _first_claims(*_frames(categorical=False))
    pd.testing.assert_series_equal(got, want, check_exact=True)


def test_each_rows_first_claim():
    """P1 by 111: its earlier line; P1 by anyone: 333's line counts; P2 by 222: the earlier of two; P2 by 999, P3 and
    P10 (its one claim undated) have none; nor has the row without a patient."""
    got = _first_claims(*_frames(categorical=True)).sort_index()
    assert got.index.tolist() == [10, 11, 12]
    assert got.tolist() == [pd.Timestamp("2026-01-20"), pd.Timestamp("2026-01-05"), pd.Timestamp("2026-02-11")]
    assert np.dtype(got.dtype) == np.dtype("datetime64[ns]")


def test_patient_months_sorted_by_id_text_on_codes():
    ids = ["P10", "P9", None, "P2", "P10", "Q1", None, "P9"]
    lines = pd.DataFrame({"patient_id": ids[:4], "mkey": [24314, 24313, 24313, 24315]})
    entries = pd.DataFrame({"patient_id": ids[4:] + ["P2"], "mkey": pd.array([24313, 24313, 24313, 24314, 24315], dtype="Int64")})
    cats = pd.CategoricalDtype(sorted({i for i in ids if i}))
    coded = patient_month_rows_of(lines.astype({"patient_id": cats}), entries.astype({"patient_id": cats}))
    text = patient_month_rows_of(lines.astype({"patient_id": "string"}), entries.astype({"patient_id": "string"}))
    assert coded["patient_id"].dtype == cats and coded["mkey"].dtype == np.dtype("int64")
    pd.testing.assert_frame_equal(coded.astype({"patient_id": "string"}), text, check_exact=True)
    assert list(zip(text["patient_id"].fillna("-"), text["mkey"])) == [
        ("P10", 24313), ("P10", 24314), ("P2", 24315), ("P9", 24313), ("P9", 24314), ("Q1", 24313), ("-", 24313)]


def test_the_visit_status_join_on_integer_keys_is_the_merge():
    """initiating_visit_status finds each row's commencement by integer keys: the left merge it replaced, row for row
    (a missing practitioner matches a missing one, a practitioner or patient the other side lacks matches nothing)."""
    from ccmlib.engine.facts import _left_join_on_keys

    cats = pd.CategoricalDtype(["P1", "P10", "P2"])
    left = pd.DataFrame({"patient_id": pd.Series(["P2", "P1", None, "P10", "P1", "P2"], dtype=cats),
                         "mkey": [24313, 24313, 24313, 24314, 24313, 24399],
                         "billing_npi": pd.array(["111", None, None, "999", "222", "111"], dtype="string")}).set_axis([7, 3, 5, 1, 0, 2])
    right = pd.DataFrame({"patient_id": pd.Series(["P2", "P1", None, "P10", "P1"], dtype=cats), "mkey": [24313, 24313, 24313, 24314, 24313],
                          "billing_npi": pd.array(["111", None, None, "888", "333"], dtype="string"),
                          "reset": pd.to_datetime([None, "2026-01-31", None, None, None]),
                          "commencement": pd.to_datetime(["2026-01-05", "2026-02-01", "2025-12-01", "2026-03-01", None])})
    got = _left_join_on_keys(left, right, ["patient_id", "mkey", "billing_npi"])
    want = left.merge(right, on=["patient_id", "mkey", "billing_npi"], how="left")
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["commencement"].notna().tolist() == [True, True, True, False, False, False]


@pytest.mark.parametrize("how", ["min", "max"])
def test_per_patient_month_is_the_group_by(how):
    """A patient-month's first or last claim date on one integer key is the group-by it replaced: the groups in its
    order, a missing patient, month or date left out as it leaves them, the dtypes kept."""
    from ccmlib.engine.facts import PM, per_patient_month

    cats = pd.CategoricalDtype(["P1", "P10", "P2", "P3"])
    lines = pd.DataFrame({"patient_id": pd.Series(["P2", "P1", None, "P10", "P1", "P2", "P2", "P1"], dtype=cats),
                          "mkey": pd.array([24313, 24313, 24313, 24314, 24314, None, 24313, 24313], dtype="Int64"),
                          "service_date": pd.to_datetime(["2026-02-03", "2026-02-10", "2026-02-01", None, "2026-03-02",
                                                          "2026-02-05", "2026-02-01", "2026-02-09"])}).set_axis([9, 8, 7, 6, 5, 4, 3, 2])
    got = per_patient_month(lines, "service_date", how, "d")
    want = lines.groupby(PM, observed=True)["service_date"].agg(how).rename("d").reset_index()
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert len(got) == 4


def test_bill_05_reads_the_tracked_thresholds_from_the_months_dates(tmp_path, monkeypatch):
    """BILL-05 takes the date a tracked threshold (20, 40, 60 ... minutes) was reached from the patient-month's date
    column and asks the running totals only for the others: the same findings as asking them for every line."""
    from ccmlib.engine.facts import build_facts
    from ccmlib.engine.periods import parse_period
    from ccmlib.engine.rules import billing
    from ccmlib.intake.load import load_practice
    from ccmlib.synth.generator import generate

    generate(patients=150, seed=6, rates={"BILL-05": 0.3, "TIME-07": 0.1}, out=tmp_path / "p", entries=(4, 9))
    facts = build_facts(load_practice(tmp_path / "p"), parse_period("2026Q1"))
    got = billing.bill_05(facts)
    asked = []
    real = type(facts.totals).reach
    monkeypatch.setattr(type(facts.totals), "reach", lambda self, req, col: asked.append(len(req)) or real(self, req, col))
    monkeypatch.setattr(billing, "STAFF_THRESHOLDS", ())
    monkeypatch.setattr(billing, "PRACTITIONER_THRESHOLDS", ())
    want = billing.bill_05(facts)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert len(got) >= 5 and sum(asked) > len(got)
