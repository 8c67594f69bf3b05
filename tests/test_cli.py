"""The ccm-audit command: help everywhere, byte-identical outputs, exit code 2 with a message on bad input."""
import json
import subprocess
import sys

import pandas as pd
import pytest
from chart import chart, write
from click.testing import CliRunner

from ccmlib.cli import main

COMMANDS = ["check", "synth", "rules", "templates", "ingest"]


@pytest.mark.parametrize("cmd", [[]] + [[c] for c in COMMANDS])
def test_help(cmd):
    r = CliRunner().invoke(main, cmd + ["--help"])
    assert r.exit_code == 0 and "Usage" in r.output


def test_check_writes_the_contract_files_byte_identically(tmp_path, demo_dir):
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        r = CliRunner().invoke(main, ["check", str(demo_dir), "--out", str(out), "--period", "2026Q3", "--quiet"])
        assert r.exit_code == 0, r.output
        outs.append(out)
    for name in ("findings.csv", "claim_lines.csv", "patient_months.csv", "data_quality.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    run = json.loads((outs[0] / "run.json").read_text())
    assert run["period"] == {"label": "2026Q3", "from": "2026-07", "to": "2026-09"}
    assert run["rule_catalog_version"] == "3" and run["packages"]["pandas"]
    assert all(len(i["sha256"]) == 64 for i in run["inputs"])
    f = pd.read_csv(outs[0] / "findings.csv", dtype=str)
    assert list(f.columns[:6]) == ["patient_id", "service_month", "rule_id", "severity", "cert_category", "message"]
    assert f["service_month"].isin(["2026-07", "2026-08", "2026-09"]).all()
    assert f.equals(f.sort_values(["patient_id", "service_month", "rule_id"], kind="mergesort"))
    cl = pd.read_csv(outs[0] / "claim_lines.csv")
    assert run["summary"]["overpayment"] == pytest.approx(cl["overpayment"].sum())
    assert set(cl["determination"]) <= {"supported", "partially_supported", "not_supported", "denied"}  # denied: paid 0 (BILL-08)


@pytest.mark.parametrize("args,needle", [
    (["check", "{missing}", "--out", "{out}"], "not a folder"),
    (["check", "{data}", "--out", "{out}", "--period", "2026Q5"], "period '2026Q5'"),
    (["check", "{data}", "--out", "{out}", "--rules", "TIME-99"], "unknown rule ID(s): TIME-99"),
    (["check", "{data}", "--out", "{out}", "--from", "2026-03", "--to", "2026-01"], "before --from"),
    (["synth", "--out", "{out}", "--months", "2026-13..2026-14"], "--months"),
])
def test_bad_input_exit_2_with_message(tmp_path, args, needle):
    data = write(chart(), tmp_path / "data")
    fill = {"missing": str(tmp_path / "nope"), "out": str(tmp_path / "out"), "data": str(data)}
    proc = subprocess.run([sys.executable, "-m", "ccmlib.cli", *[a.format(**fill) for a in args]], capture_output=True, text=True)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_bad_file_exit_2_names_the_file(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "time_entries.csv").write_text("entry_id,patient_id\nE1,P1\n")
    proc = subprocess.run([sys.executable, "-m", "ccmlib.cli", "check", str(d), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "time_entries.csv: missing required column(s)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rules_lists_the_catalog():
    r = CliRunner().invoke(main, ["rules", "--csv"])
    cat = pd.read_csv(pd.io.common.StringIO(r.output))
    assert len(cat) == 39 and cat["id"].is_unique and {"BILL-07", "BILL-08", "TIME-10", "ELIG-03", "DX-01", "DOC-01", "DOC-02", "SUP-01"} <= set(cat["id"])
    text = CliRunner().invoke(main, ["rules"]).output
    assert text.startswith("rule catalog version 3") and "BILL-07" in text and "SUP-01" in text
    assert all(r in text for r in ("TIME-10", "BILL-08", "ELIG-03", "DX-01", "DOC-01", "DOC-02"))  # catalog v3's new rules


def test_quiet_on_every_command_that_writes(tmp_path):
    """`--quiet` on every command that writes: nothing on stdout, errors still on stderr with their exit code (issue 26)."""
    import subprocess
    import sys

    for cmd in ("check", "ingest", "prebill", "handout", "inspect", "synth", "report", "batch", "templates"):
        r = CliRunner().invoke(main, [cmd, "--help"])  # the help text is click's, in any process
        assert "--quiet" in r.stdout, cmd
    from conftest import DEMO
    r = subprocess.run([sys.executable, "-m", "ccmlib.cli", "prebill", str(DEMO), "--month", "2026-09", "--out", str(tmp_path / "pb"),
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "" and (tmp_path / "pb" / "prebill.csv").is_file()
    r = subprocess.run([sys.executable, "-m", "ccmlib.cli", "prebill", str(DEMO), "--month", "2026-09", "--as-of", "bad", "--out",
                        str(tmp_path / "pb2"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == "" and "--as-of 'bad'" in r.stderr
