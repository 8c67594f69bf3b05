"""facts.encoded_tables gives every table's patient_id one shared category list (issue #23: looked up among the
patients table's ids, with ids found only elsewhere added) exactly as the straightforward encoding does: every
table's distinct ids, sorted, each row's place among them; in one thread or two."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccmlib.engine import facts as F
from ccmlib.intake.fastops import positions
from ccmlib.intake.schema import TABLES


def reference(practice) -> dict[str, pd.DataFrame]:
    """The encoding written plainly (the engine's before issue #23's third session)."""
    names = [n for n in TABLES if TABLES[n].patient_ref or n == "patients"]
    tabs = {n: F.table(practice, n) for n in TABLES}
    ids = pd.unique(pd.concat([tabs[n]["patient_id"].dropna().astype(str) for n in names if len(tabs[n])]
                              or [pd.Series([], dtype=str)], ignore_index=True))
    cats = pd.Index(np.sort(np.asarray(ids, dtype=object)))
    pid = pd.CategoricalDtype(cats)
    out = {n: (df.assign(patient_id=pd.Series(pd.Categorical.from_codes(positions(df["patient_id"], cats), dtype=pid),
                                              index=df.index)) if n in names else df) for n, df in tabs.items()}
    out["claims"] = out["claims"].assign(claim_id=out["claims"]["claim_id"].astype("category"))
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from ccmlib.synth.generator import generate
    out = tmp_path_factory.mktemp("enc") / "p"
    generate(patients=60, months="2026-01..2026-02", seed=5, out=out)
    return out


def _same(practice):
    want, got = reference(practice), F.encoded_tables(practice)
    assert list(want) == list(got)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)
        if "patient_id" in want[name]:
            assert got[name]["patient_id"].dtype == want[name]["patient_id"].dtype
    return got


def _edit(folder, tmp_path, edits: dict):
    import shutil

    from ccmlib.intake.load import load_practice
    dst = tmp_path / "p"
    shutil.copytree(folder, dst)
    for name, fn in edits.items():
        path = dst / f"{name}.csv"
        if fn is None:
            path.unlink()
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            fn(df).to_csv(path, index=False)
    return load_practice(dst)


def test_the_generated_practice(folder):
    from ccmlib.intake.load import load_practice
    got = _same(load_practice(folder))
    assert not got["time_entries"]["patient_id"].isna().any()


def test_ids_missing_from_the_patients_table_and_missing_ids(folder, tmp_path):
    def te(df):
        df.loc[0, "patient_id"] = "ZZ-only-in-the-log"
        df.loc[1, "patient_id"] = "A-before-every-other"
        df.loc[2, "patient_id"] = ""
        return df

    def claims(df):
        df.loc[0, "patient_id"] = "ZZ-only-in-the-log"
        df.loc[1, "patient_id"] = "P9999"
        return df

    got = _same(_edit(folder, tmp_path, {"time_entries": te, "claims": claims}))
    cats = got["patients"]["patient_id"].cat.categories
    assert {"ZZ-only-in-the-log", "A-before-every-other", "P9999"} <= set(cats)
    assert list(cats) == sorted(cats)


def test_without_a_patients_table(folder, tmp_path):
    got = _same(_edit(folder, tmp_path, {"patients": None}))
    assert len(got["time_entries"]["patient_id"].cat.categories) > 0


def test_two_threads_give_the_same_codes(folder, monkeypatch):
    from ccmlib.intake.load import load_practice
    practice = load_practice(folder)
    monkeypatch.setattr(F, "PARALLEL_ENCODE_FROM", 1)
    monkeypatch.setattr(F, "usable_cores", lambda: 2)
    _same(practice)
