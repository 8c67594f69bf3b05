"""A check in shards of the patients (``ccm-audit check --shards N``, issue #23) writes the run folder of one check,
byte for byte: the unsharded check is the oracle. The practices here cross patients the two ways a shard could miss:
a staff member's entries for two patients that overlap (TIME-03 counts the later one's overlap once), and one claim
with lines of two patients."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DEMO, run_cli
from ccmlib.engine import shards as sh
from ccmlib.errors import InputError

@pytest.fixture(scope="module")
def crossed(tmp_path_factory) -> Path:
    """The demo practice with patients crossed far apart in the text order (so that shards cut by it would part them):
    P000109's new entry overlaps P000008's first one (staff S0003, 2 January, 08:05-08:17 against 08:00-08:14), and
    claim C0000001 (P000040's) gains a line of P000111. Two patients the patients table lacks: P404 with an entry, P405
    with a claim (flagged by the reading of the whole practice, their rows checked in a shard)."""
    out = tmp_path_factory.mktemp("crossed") / "practice"
    shutil.copytree(DEMO, out)
    with open(out / "time_entries.csv", "a", encoding="utf-8") as fh:
        fh.write("T9000001,P000109,S0003,2026-01-02,12,08:05,08:17,care_coordination,Called pharmacy about refills,false,,S0003\n")
        fh.write("T9000002,P404,S0002,2026-02-03,15,,,care_coordination,Called about lab results,false,,S0002\n")
    with open(out / "claims.csv", "a", encoding="utf-8") as fh:
        fh.write("C0000001,9,P000111,8666668347,2026-01-20,99490,1,43.76,55.8,11,J45909;E785\n")
        fh.write("C9000001,1,P405,8666668347,2026-03-20,99490,1,43.76,55.8,11,J45909;E785\n")
    return out


@pytest.fixture(scope="module")
def plain(crossed, tmp_path_factory) -> Path:
    """The crossed practice's run folder of one check (the tables decision logs are written from)."""
    return _check(crossed, tmp_path_factory.mktemp("plain") / "run")


def _check(data: Path, out: Path, *extra: str):
    r = run_cli("check", str(data), "--out", str(out), "--period", "2026Q1", "--quiet", *extra)
    assert r.returncode == 0, r.stderr
    return out


def _assert_same_run_folder(one: Path, other: Path):
    assert sorted(p.name for p in one.glob("*.csv")) == sorted(p.name for p in other.glob("*.csv"))
    for p in one.glob("*.csv"):  # the four tables, and a sample's sample.csv and frame.csv
        assert p.read_bytes() == (other / p.name).read_bytes(), p.name
    a, b = (json.loads((p / "run.json").read_text()) for p in (one, other))
    for d in (a, b):
        for k in ("started", "finished", "command"):
            d.pop(k)
    assert json.dumps(a) == json.dumps(b)  # the same record, keys in the same order


@pytest.mark.parametrize("shards,sample", [(3, ("--sample", "12", "--seed", "5")), (5, ())])
def test_a_check_in_shards_writes_the_run_folder_of_one_check(crossed, tmp_path, shards, sample):
    one = _check(crossed, tmp_path / "one", *sample)
    _assert_same_run_folder(one, _check(crossed, tmp_path / "sharded", "--shards", str(shards), *sample))
    assert (one / "sample.csv").exists() == bool(sample)
    f = pd.read_csv(one / "findings.csv", dtype=str)
    # the crossing matters: the overlap is found across the two patients, and the shared claim's lines are audited
    assert ((f["rule_id"] == "TIME-03") & (f["entry_id"] == "T9000001")).any()
    lines = pd.read_csv(one / "claim_lines.csv", dtype=str)
    assert set(lines.loc[lines["claim_id"] == "C0000001", "patient_id"]) >= {"P000040", "P000111"}
    dq = pd.read_csv(one / "data_quality.csv", dtype=str)
    unknown = dq[dq["problem"].str.startswith("patient_id not in the patients table", na=False)]
    assert sorted(unknown["value"]) == ["P404", "P405"]


def test_the_rows_per_patient_are_every_tables_rows_of_each_id():
    """What the shards are balanced by: for each id, its rows in every table (the patients table's own included), ids
    the patients table lacks and a missing id counted too; a table read before the patients table counted by id."""
    from ccmlib.intake.fastops import arrow_text
    text = lambda v: pd.DataFrame({"patient_id": pd.array(v, dtype="string[pyarrow]"), "_line": range(2, 2 + len(v))})  # noqa: E731
    before = text(["P2", "P9"])
    patients = text(["P1", "P2", "P3"])
    entries = text(["P2", "P2", "PX", None, "P1", "PX"])
    ids = patients["patient_id"].dropna().drop_duplicates()
    found = [sh._rows_per_patient("encounters", before, None, None, "enc.csv")]
    found += [sh._rows_per_patient(n, df, ids, arrow_text(ids), f"{n}.csv") for n, df in (("patients", patients), ("time_entries", entries))]
    got = sh._sum_rows([(counts, other) for counts, other, _ in found], ids)
    unknown = [flagged for _, _, flagged in found if flagged is not None]
    assert got.index.is_unique and got[got.index.notna()].to_dict() == {"P1": 2, "P2": 4, "P3": 1, "PX": 2, "P9": 1}
    assert got[got.index.isna()].tolist() == [1]
    assert [(u["table"].iloc[0], u["line"].tolist(), [v if isinstance(v, str) else None for v in u["value"]]) for u in unknown] == [
        ("time_entries", [4, 5, 7], ["PX", None, "PX"])]


def test_patients_whose_entries_overlap_or_who_share_a_claim_are_one_shard(tmp_path):
    d = pd.Timestamp("2026-01-05")
    # p3 starts as p2 ends: no overlap. S3's day: p9's long entry overlaps p10's and p11's, which do not overlap each
    # other (one run of three); p12 starts as p9 ends
    te = pd.DataFrame({"patient_id": ["p1", "p2", "p3", "p4", "p5", "p9", "p10", "p11", "p12"],
                       "staff_id": ["S1", "S1", "S1", "S2", "S1", "S3", "S3", "S3", "S3"],
                       "activity_date": [d, d, d, d, d + pd.Timedelta(days=1), d, d, d, d],
                       "start_time": pd.array([480, 500, 520, 480, 480, 480, 490, 550, 600], dtype="Int32"),
                       "end_time": pd.array([510, 520, 540, 510, 510, 600, 500, 560, 620], dtype="Int32")})
    claims = pd.DataFrame({"claim_id": ["c1", "c1", "c2"], "patient_id": ["p6", "p7", "p8"]})
    for name, df in (("time_entries", te), ("claims", claims)):
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / f"{name}.parquet")
    weights = pd.concat([te["patient_id"], claims["patient_id"]]).value_counts()
    plan = sh._plan(tmp_path, ["time_entries", "claims"], 8, weights)
    assert plan["p1"] == plan["p2"] and plan["p6"] == plan["p7"] and plan["p9"] == plan["p10"] == plan["p11"]
    # every other patient is a component of its own: in more shards than rows, each component has a shard of its own
    alone = sh._plan(tmp_path, ["time_entries", "claims"], 100, weights)
    assert sorted(alone.groupby(alone).size()) == [1] * 5 + [2, 2, 3] and alone["p3"] != alone["p2"] and alone["p12"] != alone["p9"]
    assert list(plan.index) == sorted(plan.index)  # in the patients' text order


def test_more_shards_than_patients_and_a_parquet_folder(tmp_path):
    """Empty shards (every table without rows but the staff directory), all in this process."""
    from ccmlib.engine.pipeline import write_outputs
    from ccmlib.synth.generator import generate
    data = tmp_path / "small"
    generate(patients=6, months="2026-01..2026-03", seed=3, out=data, fmt="parquet")
    (tmp_path / "work").mkdir()
    res = sh.audit_sharded(data, 10, tmp_path / "work", period="2026Q1", processes=False)
    assert not list((tmp_path / "work").iterdir())  # the work folder emptied again
    write_outputs(res, tmp_path / "sharded")
    _assert_same_run_folder(_check(data, tmp_path / "one"), tmp_path / "sharded")


def test_every_step_of_a_check_in_shards_shows_its_progress(tmp_path, monkeypatch, capsys):
    from ccmlib import paths
    from ccmlib.synth.generator import generate
    data = tmp_path / "small"
    generate(patients=8, months="2026-01..2026-03", seed=4, out=data, fmt="parquet")
    (tmp_path / "work").mkdir()
    monkeypatch.setattr(paths, "progress_off", lambda: False)  # as on a terminal
    sh.audit_sharded(data, 2, tmp_path / "work", period="2026Q1", processes=False, progress=True)
    err = capsys.readouterr().err
    assert "loading tables" in err  # (a bar that goes away when done)
    for step in ("finding patients to keep together", "cutting into shards", "checking shards"):
        assert f"{step}: 100%" in err, step  # each bar reaches its end


def test_the_plans_database_draws_no_bar_of_its_own_and_keeps_to_its_memory(tmp_path):
    con = sh._plan_connection(tmp_path)
    try:
        got = con.execute("SELECT current_setting('enable_progress_bar'), current_setting('threads'), "
                          "current_setting('temp_directory')").fetchone()
    finally:
        con.close()
    assert got[0] is False and int(got[1]) == 2 and got[2] == str(tmp_path / "spill")


def test_the_cut_puts_each_row_in_its_patients_shard_in_the_files_order(tmp_path, monkeypatch):
    """Rows without a patient id, or with one the plan lacks, go to the first shard; a table without patients to
    every shard; each shard's rows keep the file's order (batches of two rows: across batches too)."""
    whole = tmp_path / "whole"
    whole.mkdir()
    pq.write_table(pa.table({"patient_id": ["P2", "P1", None, "P3", "P2", "PX", "P1"], "n": list(range(7))}), whole / "claims.parquet")
    pq.write_table(pa.table({"staff_id": ["S1", "S2"]}), whole / "staff.parquet")
    plan = pd.Series([0, 1, 2], index=["P1", "P2", "P3"])
    monkeypatch.setattr(sh, "_plan", lambda *a, **k: plan)
    monkeypatch.setattr(sh, "PARTITION_ROWS", 2)
    sh._plan_and_partition(tmp_path, ["claims", "staff"], 3, pd.Series(dtype="int64"))
    got = [pq.read_table(tmp_path / f"shard_{i}" / "claims.parquet").column("n").to_pylist() for i in range(3)]
    assert got == [[1, 2, 5, 6], [0, 4], [3]]
    assert all(pq.read_table(tmp_path / f"shard_{i}" / "staff.parquet").column("staff_id").to_pylist() == ["S1", "S2"] for i in range(3))
    assert not (whole / "claims.parquet").exists()


def _decision_log(one: Path) -> pd.DataFrame:
    """Decisions of every kind on patients far apart (so in different shards): overturned errors of the first and last
    patients with findings, an accepted one, a decision on a finding no longer raised, confirmed units, and auditor
    adds on a claim line (the crossed claim's line of P000111) and on a whole patient-month."""
    from ccmlib.engine import decisions

    f = pd.read_csv(one / "findings.csv", dtype=str, keep_default_na=False)
    cl = pd.read_csv(one / "claim_lines.csv", dtype=str, keep_default_na=False)
    errors = f[f["severity"] == "error"]
    pids = sorted(errors["patient_id"].unique())
    base = {c: "" for c in decisions.COLUMNS} | {"reviewer": "R. Auditor", "decided_at": "2026-12-01T10:00:00+00:00"}
    rows = []
    for pid, verdict in ((pids[0], "overturn"), (pids[-1], "overturn"), (pids[len(pids) // 2], "accept")):
        e = errors[errors["patient_id"] == pid].iloc[0]
        rows.append(base | {c: e[c] for c in decisions.KEY_FIELDS} | {"decision": verdict, "reason": "paper chart"})
    gone = errors.iloc[0]
    rows.append(base | {c: gone[c] for c in decisions.KEY_FIELDS} | {"rule_id": "CONS-01", "decision": "overturn",
                        "reason": "consent on file", "original_message": "no consent on file"})  # raised by an earlier run
    shared = cl[(cl["claim_id"] == "C0000001") & (cl["patient_id"] == "P000111")].iloc[0]
    rows.append(base | {k: shared[k] for k in ("patient_id", "service_month", "claim_id", "line")} | {
        "decision": "add", "rule_id": "CHART", "description": "cloned note", "reason": "same text as last month",
        "evidence": "notes p. 2", "units_supported": "0"})
    last = cl.iloc[-1]
    rows.append(base | {"patient_id": last["patient_id"], "service_month": last["service_month"], "decision": "add",
                        "rule_id": "TIME-01", "reason": "minutes not in the chart", "evidence": "notes p. 7",
                        "units_supported": "0"})
    for u in (cl.iloc[1], cl.iloc[len(cl) // 2]):
        rows.append(base | {k: u[k] for k in ("patient_id", "service_month", "claim_id", "line")} | {"decision": "confirm"})
    return pd.DataFrame(rows, columns=decisions.COLUMNS)


def test_a_decision_log_applied_in_shards_gives_the_run_folder_of_one_check(crossed, plain, tmp_path):
    log = tmp_path / "overrides.csv"
    _decision_log(plain).to_csv(log, index=False)
    at_once = _check(crossed, tmp_path / "one", "--overrides", str(log), "--sample", "20", "--seed", "3")
    _assert_same_run_folder(at_once, _check(crossed, tmp_path / "sharded", "--overrides", str(log), "--shards", "3",
                                            "--sample", "20", "--seed", "3"))
    o = json.loads((at_once / "run.json").read_text())["overrides"]
    assert (o["overturned"], o["accepted"], o["added"], o["confirmed"], o["no_longer_raised"]) == (2, 1, 2, 2, 1)
    trail = pd.read_csv(at_once / "overrides_applied.csv", dtype=str)
    assert len(trail) == 8 and (trail["status"] == "applied").sum() == 7


@pytest.mark.parametrize("spoil,message", [
    (lambda log: log.assign(finding_key=log["finding_key"].where(log.index != 2, "TIME-01|P999999|2026-01||||")),
     "line 4, column finding_key: 'TIME-01|P999999|2026-01||||': this audit raised no such finding"),
    (lambda log: log.assign(line=log["line"].where(log["claim_id"] != "C0000001", "77")),
     "line 6, column claim_id: claim C0000001 line 77 is not a CCM claim line of this audit")])
def test_a_decision_log_is_checked_in_shards_as_in_one_check(crossed, plain, tmp_path, spoil, message):
    """A decision that names nothing of the audit stops the check in shards with the message of one check, after the
    shards (the log's names are looked for in every shard), and writes nothing."""
    log = tmp_path / "overrides.csv"
    spoil(_decision_log(plain)).to_csv(log, index=False)
    errs = []
    for out, extra in (("one", ()), ("sharded", ("--shards", "3"))):
        r = run_cli("check", str(crossed), "--out", str(tmp_path / out), "--period", "2026Q1", "--quiet",
                    "--overrides", str(log), *extra)
        assert r.returncode != 0 and not (tmp_path / out / "findings.csv").exists()
        errs.append(r.stderr)
    assert message in errs[0] and errs[0] == errs[1]


def test_a_check_in_shards_refuses_an_unreadable_decision_log_before_reading_and_no_shards(tmp_path):
    log = tmp_path / "overrides.csv"
    log.write_text("finding_key,decision,reviewer,decided_at,reason\nx,maybe,R,2026-12-01,\n", encoding="utf-8")
    r = run_cli("check", str(DEMO), "--out", str(tmp_path / "out"), "--shards", "2", "--overrides", str(log), "--quiet")
    assert r.returncode != 0 and f"{log}: line 2, column decision: 'maybe' is not one of" in r.stderr
    assert not (tmp_path / "out" / "findings.csv").exists()
    r = run_cli("check", str(DEMO), "--out", str(tmp_path / "out0"), "--shards", "0", "--quiet")
    assert r.returncode != 0 and "--shards" in r.stderr


def test_the_staff_breakdown_of_two_shards_is_that_of_the_practice():
    """Shards' staff counts add up: a staff member's minutes in a shard where none of their patient-months was billed
    still count (their billed patient-months are in another shard). The demo's first half of patients is made a
    shard without billing (its patient-months unbilled), the second half one with."""
    from types import SimpleNamespace

    import numpy as np

    from conftest import demo_audit
    from ccmlib.engine.pipeline import _by_staff, staff_counts
    from ccmlib.engine.sqlfacts import EntryStore, staff_rows_of

    res = demo_audit("2026Q1")
    store, cats = res.facts.store, res.facts.store.dtypes["patient_id"].categories
    cut = cats[len(cats) // 2]
    pm = res.patient_months.copy()
    pm.loc[pm["patient_id"] < cut, "codes_billed"] = ""
    in_first = np.asarray(cats < cut)[np.asarray(store.table.column("p").to_numpy(zero_copy_only=False), dtype="int64")]
    parts = []
    for half in (True, False):
        shard = EntryStore(store.table.filter(pa.array(in_first == half)), store.dtypes, store.index[in_first == half])
        parts.append(staff_counts(SimpleNamespace(store=shard), pm[(pm["patient_id"] < cut) == half]))
    assert {s for s, n, *_ in parts[0] if n == 0} & {s for s, n, *_ in parts[1] if n > 0}  # such staff members exist
    assert staff_rows_of(parts) == _by_staff(res.facts, pm)


def test_shards_checked_two_at_a_time_give_the_same_run_folder(crossed, plain, tmp_path):
    _assert_same_run_folder(plain, _check(crossed, tmp_path / "two", "--shards", "4", "--shard-jobs", "2"))
    r = run_cli("check", str(DEMO), "--out", str(tmp_path / "x"), "--shard-jobs", "2", "--quiet", "--no-memory-check")
    assert r.returncode != 0 and "--shard-jobs goes with --shards" in r.stderr
    r = run_cli("check", str(DEMO), "--out", str(tmp_path / "y"), "--shard-jobs", "2", "--quiet")  # within the limit: at once
    assert r.returncode == 0 and (tmp_path / "y" / "findings.csv").is_file()


def test_a_practice_over_the_memory_limit_is_checked_in_shards_with_the_outputs_of_one_check(crossed, plain, tmp_path, monkeypatch):
    from ccmlib.engine import capacity
    monkeypatch.setattr(capacity, "BASE_BYTES", 0)  # the memory model of a large practice (the time entries count)
    monkeypatch.setattr(capacity, "SHARD_BASE_BYTES", 0)
    rows = capacity.count_rows(crossed / "time_entries.csv")
    limit = str(capacity.needed_bytes(rows) - 1)  # a byte short of the check at once: two shards
    one = plain
    r = run_cli("check", str(crossed), "--out", str(tmp_path / "limited"), "--period", "2026Q1", "--memory-limit", limit)
    assert r.returncode == 0, r.stderr
    assert f"checking in 2 shards of its patients" in r.stderr and f"(--memory-limit {limit})" in r.stderr
    _assert_same_run_folder(one, tmp_path / "limited")
    r = run_cli("check", str(crossed), "--out", str(tmp_path / "two"), "--period", "2026Q1", "--memory-limit", limit,
                "--shard-jobs", "2")  # two at once: smaller shards, so more of them
    assert r.returncode == 0 and "checking in 3 shards of its patients" in r.stderr, r.stderr
    _assert_same_run_folder(one, tmp_path / "two")
    r = run_cli("check", str(crossed), "--out", str(tmp_path / "x"), "--memory-limit", "2GB", "--no-memory-check")
    assert r.returncode != 0 and "give one or the other" in r.stderr


def test_the_memory_check_counts_shards(tmp_path):
    from ccmlib.engine import capacity
    whole = capacity.needed_bytes(8_000_000)
    assert capacity.needed_bytes(8_000_000, shards=8) < whole / 2
    assert capacity.needed_bytes(8_000_000, shards=4, jobs=2) > capacity.needed_bytes(8_000_000, shards=4)
    rows = capacity.count_rows(DEMO / "time_entries.csv")
    with pytest.raises(InputError, match="check in shards"):  # the message of a check at once suggests shards
        capacity.check_fits(DEMO, available=capacity.needed_bytes(rows) - 1)
    capacity.check_fits(DEMO, available=capacity.needed_bytes(rows, shards=4), shards=4)
    with pytest.raises(InputError, match="in 4 shards, 1 at once"):
        capacity.check_fits(DEMO, available=1, shards=4)


def _stopped(*args):
    import os
    import signal
    os.kill(os.getpid(), signal.SIGKILL)  # as the system's out-of-memory killer stops a process


def _quick():
    return "quick"


def _waits_for(flag):
    import time
    for _ in range(300):  # 30 s
        if Path(flag).exists():
            return "after the flag"
        time.sleep(0.1)
    raise TimeoutError("the flag never came: the first task's end was not reported before this one ended")


def test_each_process_is_reported_as_it_ends_not_when_all_have(tmp_path):
    """The bar of the shards moves as each shard ends: the second task waits for a flag the caller sets only when it
    has been told the first one ended."""
    flag = tmp_path / "flag"
    ends = sh._in_processes([(_waits_for, str(flag)), (_quick,)], 2)
    assert next(ends) == "quick"
    flag.touch()
    assert list(ends) == ["after the flag"]


def test_a_shard_process_stopped_by_the_system_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sh, "STEPS", {**sh.STEPS, "_stopped": sh.STEPS["_audit_shard"]})
    with pytest.raises(InputError, match="the process checking a shard ended without a result .*--shards"):
        list(sh._in_processes([(_stopped, 1)], 1))
