"""`ccm-audit inspect`: an export with renamed columns and recoded values gets a draft mapping.yml that makes `check`
read it exactly as the contract layout."""
import shutil

import pandas as pd
import pytest

from ccmlib.intake.inspect import guess_column, guess_value, inspect_folder
from ccmlib.intake.schema import ROLES
from conftest import run_cli


def cli(*args):
    return run_cli(*args)  # the command in this process (conftest.run_cli): its exit code, stdout and stderr


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The same synthetic practice twice: in the contract layout, and as another system exports it."""
    from ccmlib.synth.generator import generate
    root = tmp_path_factory.mktemp("inspect")
    clean = root / "clean"
    generate(patients=30, months="2026-07..2026-09", seed=4, out=clean)
    (clean / "truth.csv").unlink()
    other = root / "other"
    shutil.copytree(clean, other)
    (other / "synth.json").unlink()
    te = pd.read_csv(other / "time_entries.csv", dtype=str, keep_default_na=False)
    te.rename(columns={"patient_id": "Pt MRN", "minutes": "Mins", "staff_id": "Staff", "description": "Notes"}).to_csv(
        other / "time_entries.csv", index=False)
    cl = pd.read_csv(other / "claims.csv", dtype=str, keep_default_na=False)
    cl.rename(columns={"service_date": "DOS", "cpt_code": "CPT", "billing_npi": "Rendering NPI"}).to_csv(other / "claims.csv", index=False)
    st = pd.read_csv(other / "staff.csv", dtype=str, keep_default_na=False)
    st["role"] = st["role"].replace({"rn": "Registered Nurse", "ma": "Medical Assistant", "physician": "MD", "social_worker": "LCSW"})
    st.rename(columns={"role": "Credential"}).to_csv(other / "staff.csv", index=False)
    return clean, other


def test_the_report_names_found_missing_unmapped_and_bad_values(exports):
    _, other = exports
    ins = inspect_folder(other)
    by = {t.table: t for t in ins.tables}
    assert by["claims"].guesses == {"Rendering NPI": "billing_npi", "DOS": "service_date", "CPT": "cpt_code"}
    assert by["time_entries"].guesses == {"Pt MRN": "patient_id", "Staff": "staff_id", "Mins": "minutes", "Notes": "description"}
    assert by["staff"].guesses == {"Credential": "role"}
    assert {b["value"] for b in by["staff"].bad_values} >= {"MD", "Registered Nurse"}
    assert by["staff"].recodes["role"]["Registered Nurse"] == "rn" and by["staff"].recodes["role"]["MD"] == "physician"
    assert by["patients"].guesses == {} and not by["patients"].missing_required
    text = ins.text()
    assert "guess: DOS -> service_date" in text and "draft maps it to rn" in text


def test_the_draft_mapping_makes_check_read_the_export_like_the_contract_layout(exports, tmp_path):
    clean, other = exports
    r = cli("check", other, "--out", tmp_path / "before", "--period", "2026Q3", "--quiet")
    assert r.returncode == 2 and "missing required column" in r.stderr and "ccm-audit inspect" in r.stderr  # as it is: unreadable
    r = cli("inspect", other, "--write")
    assert r.returncode == 0, r.stderr
    assert (other / "mapping.yml").is_file() and "written:" in r.stdout
    a = cli("check", clean, "--out", tmp_path / "a", "--period", "2026Q3", "--quiet")
    b = cli("check", other, "--out", tmp_path / "b", "--period", "2026Q3", "--quiet")
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    for name in ("findings.csv", "claim_lines.csv", "patient_months.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    r = cli("inspect", other, "--write")  # never over a mapping.yml that exists
    assert r.returncode == 2 and "never overwrites" in r.stderr


def test_guesses_on_their_own():
    assert guess_column("patient_id", ["MRN", "Visit"]) == "MRN"
    assert guess_column("service_date", ["Svc Date", "Amount"]) == "Svc Date"
    assert guess_column("cpt_code", ["Amount", "Units"]) is None
    assert guess_value("Nurse Practitioner", ROLES) == "np"
    assert guess_value("Front Desk", ROLES) == "non_clinical"
    assert guess_value("astronaut", ROLES) is None
