"""``audit(keep_facts=False)``, as ``ccm-audit check`` runs it (issue #23): the facts only the rules and the views read
are let go before the output tables are made, and the run folder is the one a full audit writes, byte for byte; the
views then say why they cannot be read."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ccmlib.engine import pipeline
from conftest import DEMO, demo_audit


@pytest.fixture(scope="module")
def lean():
    return pipeline.audit(DEMO, period="2026Q3", keep_facts=False)


def test_the_run_folder_is_the_full_audits(lean, tmp_path):
    full = demo_audit("2026Q3")
    for res in (full, lean):
        pipeline.attach_sample(res, 12, seed=4)
    a, b = pipeline.write_outputs(full, tmp_path / "full"), pipeline.write_outputs(lean, tmp_path / "lean")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and "sample.csv" in names
    for name in [n for n in names if not n.startswith(".")]:  # the folder's marker records when it was made
        x, y = (a / name).read_bytes(), (b / name).read_bytes()
        if name == "run.json":
            x, y = ({k: v for k, v in json.loads(t).items() if k not in ("started", "finished")} for t in (x, y))
            assert x["summary"]["by_staff"]  # read from the kept staff minutes
        assert x == y, name


def test_only_the_summarys_facts_are_kept(lean):
    f = lean.facts
    assert f.totals is None and not f.memo
    assert sorted(f.store.columns) == ["duration", "mkey", "patient_id", "qualifying", "staff_id"]
    assert set(f.store.table.column_names) == {"_pos", "p", "staff_id", "mkey", "duration", "qualifying"}
    kept = f.entry_rows(columns=["staff_id", "qualifying"])
    full = demo_audit("2026Q3").facts.entry_rows(columns=["staff_id", "qualifying"])
    pd.testing.assert_frame_equal(kept, full)


def test_the_views_say_the_facts_were_let_go(lean):
    with pytest.raises(ValueError, match=r"let go after this audit \(audit\(keep_facts=False\)"):
        lean.entries()
    with pytest.raises(ValueError, match="description"):
        lean.facts.entry_rows(columns=["entry_id", "description"])
    pm = lean.patient_months.iloc[0]
    with pytest.raises(ValueError, match="keep_facts=True"):
        lean.patient_month(pm["patient_id"], pm["service_month"])
