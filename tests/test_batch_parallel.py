"""`ccm-audit batch --jobs 2` and `--scheduler` (a local Dask cluster on 127.0.0.1) write the same files as a serial
run: every practice's run folder byte for byte, and the same portfolio."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from ccmlib.workbench.portfolio import make_demo_clients

FILES = ("findings.csv", "claim_lines.csv", "patient_months.csv", "data_quality.csv")


def batch(clients, out, *extra):
    r = subprocess.run([sys.executable, "-m", "ccmlib.cli", "batch", str(clients), "--period", "2026Q3", "--out", str(out),
                        "--check-only", *map(str, extra)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def same_as_serial(serial, other):
    a = pd.read_csv(serial / "portfolio.csv", dtype=str, keep_default_na=False)
    b = pd.read_csv(other / "portfolio.csv", dtype=str, keep_default_na=False)
    assert a.drop(columns="folder").equals(b.drop(columns="folder"))
    for practice in a.loc[a["status"] == "ok", "practice"]:
        for name in FILES:
            assert (serial / practice / name).read_bytes() == (other / practice / name).read_bytes(), (practice, name)
        sa = json.loads((serial / practice / "run.json").read_text())["summary"]
        sb = json.loads((other / practice / "run.json").read_text())["summary"]
        assert sa == sb


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    clients = make_demo_clients(root / "clients", patients=20, which=("csv", "mapping", "broken"))
    batch(clients, root / "serial")
    return clients, root


def test_jobs_2_gives_the_serial_files(serial):
    clients, root = serial
    batch(clients, root / "jobs2", "--jobs", "2")
    same_as_serial(root / "serial", root / "jobs2")


def test_a_local_dask_cluster_gives_the_serial_files(serial):
    from distributed import LocalCluster
    clients, root = serial
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        batch(clients, root / "dask", "--scheduler", cluster.scheduler_address)
    same_as_serial(root / "serial", root / "dask")


def test_jobs_and_scheduler_are_checked(serial, tmp_path):
    clients, _ = serial
    r = subprocess.run([sys.executable, "-m", "ccmlib.cli", "batch", str(clients), "--period", "2026Q3", "--out", str(tmp_path / "x"),
                        "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], capture_output=True, text=True)
    assert r.returncode == 2 and "not both" in r.stderr
