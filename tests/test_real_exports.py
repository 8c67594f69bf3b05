"""Real exports (issue 25): US dates, separators, BOMs, encodings, a workbook per table, strict date options."""
import re
import shutil

import pandas as pd
import pytest

from ccmlib.errors import InputError
from ccmlib.intake.load import load_practice
from conftest import run_cli

OUTPUTS = ("findings", "claim_lines", "patient_months")


def cli(*args):
    return run_cli(*args)  # the command in this process (conftest.run_cli): its exit code, stdout and stderr


@pytest.fixture(scope="module")
def iso_run(tmp_path_factory):
    from conftest import DEMO
    out = tmp_path_factory.mktemp("iso") / "out"
    r = cli("check", DEMO, "--period", "2026Q3", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def _copy(demo_dir, dest):
    shutil.copytree(demo_dir, dest, ignore=shutil.ignore_patterns("truth.csv", "synth.json"))
    return dest


def _same(iso_run, out, also=("data_quality",)):
    for name in (*OUTPUTS, *also):
        assert (out / f"{name}.csv").read_bytes() == (iso_run / f"{name}.csv").read_bytes(), name


def test_us_dates_are_named_and_with_the_setting_audit_byte_identical(tmp_path, demo_dir, iso_run):
    us = _copy(demo_dir, tmp_path / "us")
    for f in us.glob("*.csv"):
        f.write_text(re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", r"\2/\3/\1", f.read_text()))
    r = cli("check", us, "--period", "2026Q3", "--out", tmp_path / "out", "--quiet")
    assert r.returncode == 2
    assert "every one of the 120 rows of the patients table was rejected" in r.stderr
    assert "the values look like MM/DD/YYYY: add `dates: MM/DD/YYYY` to mapping.yml" in r.stderr and "line 2" in r.stderr
    r = cli("inspect", us, "--write")
    assert r.returncode == 0 and "dates written MM/DD/YYYY, not YYYY-MM-DD" in r.stdout
    assert "\ndates: MM/DD/YYYY\n" in (us / "mapping.yml").read_text()
    r = cli("check", us, "--period", "2026Q3", "--out", tmp_path / "out", "--quiet")
    assert r.returncode == 0, r.stderr
    _same(iso_run, tmp_path / "out")
    # per table: a table whose dates are ISO keeps them; a value in the other format is still named
    (us / "mapping.yml").write_text("claims:\n  dates: MM/DD/YYYY\n")
    with pytest.raises(InputError, match="patients table was rejected"):
        load_practice(us)


def test_a_few_bad_dates_are_rows_not_a_format(tmp_path, demo_dir):
    d = _copy(demo_dir, tmp_path / "d")
    t = pd.read_csv(d / "time_entries.csv", dtype=str, keep_default_na=False)
    t.loc[3, "activity_date"] = "07/14/2026"
    t.to_csv(d / "time_entries.csv", index=False)
    p = load_practice(d)
    row = p.quality[(p.quality["table"] == "time_entries") & (p.quality["line"] == 5)].iloc[0]
    assert row["problem"] == "not a valid date (expected YYYY-MM-DD)" and row["value"] == "07/14/2026"


def test_semicolons_a_bom_and_windows_text(tmp_path, demo_dir, iso_run):
    d = _copy(demo_dir, tmp_path / "d")
    for name in ("claims", "time_entries"):
        df = pd.read_csv(d / f"{name}.csv", dtype=str, keep_default_na=False)
        (d / f"{name}.csv").write_bytes(b"\xef\xbb\xbf" + df.to_csv(index=False, sep=";").encode())
    r = cli("inspect", d)
    assert r.returncode == 0 and "tokeniz" not in r.stdout + r.stderr and "MISSING" not in r.stdout
    r = cli("check", d, "--period", "2026Q3", "--out", tmp_path / "out", "--quiet")
    assert r.returncode == 0, r.stderr
    _same(iso_run, tmp_path / "out")
    # a staff table from Windows (cp1252): a clear message, then read as its mapping.yml says
    staff = (d / "staff.csv").read_text().replace("\n", ",\n", 1)
    lines = staff.splitlines()
    lines[0] = lines[0].rstrip(",") + ",note"
    lines[1] = lines[1] + ",Cl\u00e9ment's notes"
    (d / "staff.csv").write_bytes(("\n".join(lines[:2] + [x + "," for x in lines[2:]]) + "\n").encode("cp1252"))
    with pytest.raises(InputError, match=r"staff.csv: not UTF-8 text .*csv: \{encoding: cp1252\}"):
        load_practice(d)
    (d / "mapping.yml").write_text("staff:\n  csv: {encoding: cp1252}\n")
    p = load_practice(d)
    assert "Cl\u00e9ment's notes" in p["staff"]["note"].tolist()
    (d / "mapping.yml").write_text("csv: {separator: 'tab'}\n")  # a wrong setting is not guessed around
    with pytest.raises(InputError, match="missing required column"):
        load_practice(d)
    (d / "mapping.yml").write_text("csv: {encoding: klingon}\n")
    with pytest.raises(InputError, match="mapping.yml: csv: encoding 'klingon' is not an encoding"):
        load_practice(d)
    (d / "mapping.yml").write_text("dates: MM-DD-YY-ish\n")
    with pytest.raises(InputError, match="dates: 'MM-DD-YY-ish' is not a date format this tool reads"):
        load_practice(d)


def test_a_workbook_per_table(tmp_path, demo_dir, iso_run):
    d = tmp_path / "books"
    d.mkdir()
    for f in demo_dir.glob("*.csv"):
        if f.name == "truth.csv":
            continue
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        with pd.ExcelWriter(d / f"{f.stem}.xlsx") as xw:
            pd.DataFrame({"about": ["exported by the EHR"]}).to_excel(xw, sheet_name="README", index=False)
            df.to_excel(xw, sheet_name="Sheet1", index=False)
    r = cli("check", d, "--period", "2026Q3", "--out", tmp_path / "out", "--quiet")
    assert r.returncode == 0, r.stderr
    _same(iso_run, tmp_path / "out", also=())
    # two sheets in a one-table workbook, or a table twice: refused with both names
    with pd.ExcelWriter(d / "claims.xlsx", mode="a", engine="openpyxl") as xw:
        pd.DataFrame({"x": [1]}).to_excel(xw, sheet_name="Sheet2", index=False)
    with pytest.raises(InputError, match="claims.xlsx: a workbook named after the claims table holds it on one sheet; it has 2"):
        load_practice(d)
    (d / "claims.xlsx").unlink()
    shutil.copy(demo_dir / "claims.csv", d / "claims.csv")
    with pd.ExcelWriter(d / "claims.xlsx") as xw:
        pd.read_csv(demo_dir / "claims.csv", dtype=str).to_excel(xw, sheet_name="Sheet1", index=False)
    with pytest.raises(InputError, match="table claims is both in claims.csv and in sheet 'Sheet1' of claims.xlsx"):
        load_practice(d)


@pytest.mark.parametrize("value,words", [("2026-09-31", "a day that exists"), ("yesterday", "expected YYYY-MM-DD"),
                                         ("09/20/2026", "looks like MM/DD/YYYY"), ("20/09/2026", "looks like DD/MM/YYYY")])
def test_as_of_is_strict(tmp_path, demo_dir, value, words):
    r = cli("prebill", demo_dir, "--month", "2026-09", "--as-of", value, "--out", tmp_path / "pb")
    assert r.returncode == 2 and f"--as-of {value!r}: not a date" in r.stderr and words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "pb" / "prebill.csv").exists()
