"""CCM commencement's first claim per (patient, practitioner) on integer keys (issue #23) equals the text path the
function takes for ids of any other kind: named and any-practitioner rows, claims without a practitioner or a date,
patients with no claim, a missing patient."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.engine.facts import _first_claims


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
