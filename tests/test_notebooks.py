"""Each workbench notebook runs once through papermill (as a user's Run All would) and records a value the test checks;
the quarterly-review notebook runs in tests/test_report.py through `ccm-audit report`."""

import papermill as pm
import pytest

from ccmlib import paths
from ccmlib.engine.pipeline import audit
from ccmlib.report.record import read_records


def execute(name, tmp_path, **params):
    out = tmp_path / name
    pm.execute_notebook(str(paths.notebook(name)), str(out), parameters=params, kernel_name="python3", progress_bar=False,
                        cwd=str(tmp_path), start_timeout=120, request_save_on_cell_execute=False,  # written once, at the end
                        execution_timeout=600)  # a kernel's lost reply fails the test instead of hanging the suite
    return read_records(out)


def test_chart_review_notebook_queues_the_flagged_months(tmp_path, demo_dir):
    rec = execute("chart_review.ipynb", tmp_path, period="2026-07", audit_dir=str(tmp_path / "audit"))
    res = audit(demo_dir, period="2026-07")
    assert rec["queue"]["errors"] == res.run["summary"]["findings"]["error"] > 0
    assert rec["queue"]["patient_months"] > 0 and (tmp_path / "audit" / "findings.csv").is_file()


@pytest.mark.parametrize("pitfall, rules", [("CONS-02", ["CONS-02"])])
def test_training_notebook_shows_the_pitfall(tmp_path, pitfall, rules):
    rec = execute("pitfalls_training.ipynb", tmp_path, pitfall=pitfall)
    assert rec["verdict"]["pitfall"] == pitfall and rec["verdict"]["rules"] == rules and rec["verdict"]["overpayment"] > 0


def test_portfolio_notebook_keeps_going_past_the_broken_practice(tmp_path):
    rec = execute("practice_portfolio.ipynb", tmp_path)
    status = {r["practice"]: r["status"] for r in rec["portfolio"]}
    assert status == {"clinic_a_csv": "ok", "clinic_b_excel": "ok", "clinic_c_mapping": "ok", "clinic_d_broken": "failed"}


def test_prebill_notebook_shows_the_same_worklist_as_the_library(tmp_path):
    from conftest import demo_prebill
    rec = execute("monthly_prebill.ipynb", tmp_path, month="2026-09", as_of="2026-09-20")
    expected = demo_prebill("2026-09", as_of="2026-09-20").by_status().to_dict("records")
    assert rec["by_status"] == expected and sum(r["patients"] for r in expected) > 0
