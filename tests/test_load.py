"""Loading practice data: typed tables, a data-quality row for every bad row, clear file errors."""
import pandas as pd
import pytest
from chart import chart, entry, write

from ccmlib.errors import InputError
from ccmlib.intake.load import load_practice


def test_demo_loads_typed_and_reconciles(demo_dir):
    p = load_practice(demo_dir)
    te = p["time_entries"]
    assert pd.api.types.is_datetime64_any_dtype(te["activity_date"])
    assert pd.api.types.is_float_dtype(te["minutes"])
    assert str(te["face_to_face"].dtype) == "boolean"
    assert str(te["start_time"].dtype) == "Int32"
    assert pd.api.types.is_datetime64_any_dtype(p["consents"]["consent_date"])
    assert str(p["claims"]["line"].dtype) == "Int64"
    for i in p.inputs:
        assert i["rows_read"] == i["rows_accepted"] + i["rows_rejected"]
        assert len(i["sha256"]) == 64
    assert (p.quality["action"] == "rejected").sum() == 0


def bad_practice(tmp_path):
    t = chart()
    t["patients"].append(dict(t["patients"][0]))  # duplicate patient_id, line 3
    t["time_entries"] += [
        entry("E3", -5),  # line 4: negative minutes
        entry("E4", 2000),  # line 5: impossible minutes
        entry("E5", 300),  # line 6: implausible, flagged and kept
        entry("E6", None, start="10:00", end="09:30"),  # line 7: end before start
        entry("E7", 10, date="2026-02-30"),  # line 8: unparseable date
        entry("E1", 10),  # line 9: duplicate entry_id
        entry("E8", 10, patient="P404"),  # line 10: unknown patient, flagged
        entry("E9", 30, start="10:00", end="10:10"),  # line 11: minutes disagree with start/end
        entry("E10", 10, face_to_face="maybe"),  # line 12: not a boolean
        entry("E11", 10, start="25:00", end="25:10"),  # line 13: not a time
    ]
    t["claims"].append({**t["claims"][0], "line": "2", "service_date": "31/01/2026"})  # line 3: bad date
    return write(t, tmp_path / "bad")


def test_every_bad_row_is_listed_with_file_line_column(tmp_path):
    p = load_practice(bad_practice(tmp_path))
    dq = p.quality
    got = {(r.table, r.file, int(r.line), r.column, r.action) for r in dq[dq["line"].notna()].itertuples()}
    expected = {
        ("patients", "patients.csv", 3, "patient_id", "rejected"),
        ("time_entries", "time_entries.csv", 4, "minutes", "rejected"),
        ("time_entries", "time_entries.csv", 5, "minutes", "rejected"),
        ("time_entries", "time_entries.csv", 6, "minutes", "flagged"),
        ("time_entries", "time_entries.csv", 7, "end_time", "rejected"),
        ("time_entries", "time_entries.csv", 8, "activity_date", "rejected"),
        ("time_entries", "time_entries.csv", 9, "entry_id", "rejected"),
        ("time_entries", "time_entries.csv", 10, "patient_id", "flagged"),
        ("time_entries", "time_entries.csv", 11, "minutes", "rejected"),
        ("time_entries", "time_entries.csv", 12, "face_to_face", "rejected"),
        ("time_entries", "time_entries.csv", 13, "start_time", "rejected"),
        ("time_entries", "time_entries.csv", 13, "end_time", "rejected"),
        ("claims", "claims.csv", 3, "service_date", "rejected"),
    }
    assert got == expected
    counts = {i["table"]: i for i in p.inputs}
    te = counts["time_entries"]
    assert (te["rows_read"], te["rows_accepted"], te["rows_rejected"]) == (12, 4, 8)
    for i in p.inputs:
        rejected_lines = dq[(dq["table"] == i["table"]) & (dq["action"] == "rejected")]["line"].nunique()
        assert i["rows_rejected"] == rejected_lines
        assert i["rows_read"] == i["rows_accepted"] + i["rows_rejected"]
    assert set(p["time_entries"]["entry_id"]) == {"E1", "E2", "E5", "E8"}
    bad = dq[(dq["line"] == 8) & (dq["table"] == "time_entries")].iloc[0]
    assert bad["value"] == "2026-02-30" and "YYYY-MM-DD" in bad["problem"]


def test_multiline_quoted_field_keeps_line_numbers(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "time_entries.csv").write_text(
        "entry_id,patient_id,staff_id,activity_date,minutes,description\n"
        'E1,P1,S1,2026-01-05,10,"two\nlines"\n'
        "E2,P1,S1,2026-01-05,-1,x\n", encoding="utf-8")
    dq = load_practice(d).quality
    assert dq.loc[dq["column"] == "minutes", "line"].tolist() == [4]


@pytest.mark.parametrize("name,content,needle", [
    ("time_entries.csv", b"entry_id,patient_id,activity_date,description\nE1,P1,2026-01-01,x\n", "missing required column(s) staff_id, minutes or start_time+end_time"),
    ("patients.csv", "patient_id\nJos\xe9\n".encode("latin-1"), "not UTF-8"),
    ("claims.csv", b"", "file is empty"),
])
def test_bad_files_raise_one_clear_message(tmp_path, name, content, needle):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as exc:
        load_practice(tmp_path)
    assert needle in str(exc.value) and name in str(exc.value)


def test_unknown_sheet(tmp_path):
    with pd.ExcelWriter(tmp_path / "export.xlsx") as xw:
        pd.DataFrame({"patient_id": ["P1"]}).to_excel(xw, sheet_name="patients", index=False)
        pd.DataFrame({"x": [1]}).to_excel(xw, sheet_name="Sheet1", index=False)
    with pytest.raises(InputError, match=r"export.xlsx: unknown sheet 'Sheet1'"):
        load_practice(tmp_path)


def test_excel_and_parquet_load_like_csv(tmp_path):
    src = write(chart(), tmp_path / "csv")
    ref = load_practice(src)
    with pd.ExcelWriter(tmp_path / "book.xlsx") as xw:
        for name in ref.tables:
            pd.read_csv(src / f"{name}.csv", dtype=str, keep_default_na=False).to_excel(xw, sheet_name=name, index=False)
    (tmp_path / "xl").mkdir()
    (tmp_path / "book.xlsx").rename(tmp_path / "xl" / "book.xlsx")
    (tmp_path / "pq").mkdir()
    for name in ref.tables:
        df = pd.read_csv(src / f"{name}.csv")  # pandas guesses types: numbers, NaN
        df.to_parquet(tmp_path / "pq" / f"{name}.parquet")
    for other in (load_practice(tmp_path / "xl"), load_practice(tmp_path / "pq")):
        for name, df in ref.tables.items():
            a = df.drop(columns="_line").reset_index(drop=True)
            b = other[name].drop(columns="_line").reset_index(drop=True)
            pd.testing.assert_frame_equal(a.astype(str), b.astype(str), check_dtype=False, obj=name)
        assert other.quality["action"].eq("rejected").sum() == 0


def test_mapping_renames_and_recodes(tmp_path):
    t = chart()
    t["time_entries"] = [{("Pt MRN" if k == "patient_id" else "Mins" if k == "minutes" else k): v for k, v in r.items()}
                         for r in t["time_entries"]]
    for r in t["time_entries"]:
        r["activity"] = "Med Rec"
    d = write(t, tmp_path / "mapped")
    (d / "mapping.yml").write_text("time_entries:\n  columns: {Pt MRN: patient_id, Mins: minutes}\n"
                                   "  values: {activity: {\"Med Rec\": medication_reconciliation}}\n")
    te = load_practice(d)["time_entries"]
    assert te["patient_id"].tolist() == ["P1", "P1"]
    assert te["minutes"].tolist() == [15.0, 13.0]
    assert set(te["activity"]) == {"medication_reconciliation"}


def test_mapping_with_unknown_table_is_a_clear_error(tmp_path):
    d = write(chart(), tmp_path / "m")
    (d / "mapping.yml").write_text("timelog:\n  columns: {a: b}\n")
    with pytest.raises(InputError, match="mapping.yml: unknown table 'timelog'"):
        load_practice(d)


def test_a_number_too_large_for_a_whole_number_column_is_a_rejected_row_not_a_crash(tmp_path, demo_dir):
    """1e30 in claims.units (CSV text, or a Parquet number column) cannot be a 64-bit whole number: the row is
    rejected with a data-quality row naming file, line and column, and the rest of the table loads."""
    import shutil
    src = tmp_path / "csv"
    shutil.copytree(demo_dir, src)
    claims = pd.read_csv(src / "claims.csv", dtype=str, keep_default_na=False)
    claims.loc[0, "units"], claims.loc[1, "units"] = "1e30", "-9.3e18"
    claims.to_csv(src / "claims.csv", index=False)
    p = load_practice(src)
    big = p.quality[p.quality["problem"].str.startswith("too large for a whole number")]
    assert big[["file", "line", "column", "value", "action"]].values.tolist() == [
        ["claims.csv", 2, "units", "1e30", "rejected"], ["claims.csv", 3, "units", "-9.3e18", "rejected"]]
    assert len(p["claims"]) == len(claims) - 2
    pq = tmp_path / "parquet"
    shutil.copytree(demo_dir, pq)
    (pq / "claims.csv").unlink()
    c = pd.read_csv(demo_dir / "claims.csv", dtype=str, keep_default_na=False)
    c["units"] = [1e30] + [1.0] * (len(c) - 1)  # a number column of a Parquet or Excel export: floats
    c.to_parquet(pq / "claims.parquet")
    p = load_practice(pq)
    big = p.quality[p.quality["problem"].str.startswith("too large for a whole number")]
    assert big[["file", "line", "column", "value", "action"]].values.tolist() == [["claims.parquet", 1, "units", "1e+30", "rejected"]]
    assert len(p["claims"]) == len(c) - 1 and p["claims"]["units"].dtype == "Int64"
