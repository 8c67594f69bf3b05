"""ccm-audit benchmarks (run by hand, never inside the test suite).

    .venv/bin/python benchmarks/run.py                       # 10k, 100k, 1M patient-months + the report
    .venv/bin/python benchmarks/run.py --sizes 10k,100k      # a quicker subset
    .venv/bin/python benchmarks/run.py --write-readme        # also rewrite the table in benchmarks/README.md

For each size it generates a synthetic practice with the project's generator (Parquet, 6-10 time
entries per patient-month, about 8 on average), then times whole processes: (a) loading,
(b) the full rule check (`ccm-audit check`), and a floor: the least work any correct engine must
do on the same data (read the Parquet tables, sort the time entries by staff, date and start,
and one group-by sum of minutes per patient-month). It reports wall time, peak RSS (process and
children, sampled every 20 ms), rows per second and the check/floor ratio. (c) renders the
quarterly report (HTML, PDF, Excel) for a 2,000-patient practice, one quarter.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PY = sys.executable
CLI = [PY, "-m", "ccmlib.cli"]
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
MONTHS = "2026-01..2026-03"

LOAD = "import sys; from ccmlib.intake.load import load_practice; p = load_practice(sys.argv[1]); print(len(p['time_entries']))"
FLOOR = """
import sys, pandas as pd
from pathlib import Path
d = Path(sys.argv[1])
tables = {p.stem: pd.read_parquet(p) for p in d.glob('*.parquet')}
te = tables['time_entries']
te = te.sort_values(['staff_id', 'activity_date', 'start_time'], kind='stable')
month = te['activity_date'].dt.year * 12 + te['activity_date'].dt.month
s = te.groupby([te['patient_id'], month])['minutes'].sum()
print(len(s))
"""


def measure(cmd: list[str], label: str) -> dict:
    """Run a command; wall time and peak RSS of it and its children."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak / 2**20), "stdout": out.strip()[-200:]}


def practice(size: str) -> tuple[Path, dict]:
    n_pm = SIZES[size]
    folder = OUT / f"practice_{size}"
    if not (folder / "time_entries.parquet").exists():
        r = measure([*CLI, "synth", "--patients", str(n_pm // 3), "--months", MONTHS, "--seed", "7", "--format", "parquet",
                     "--entries", "6-10", "--out", str(folder)], f"synth {size}")
        gen = {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}
        (folder / "bench_synth.json").write_text(json.dumps(gen))
    gen = json.loads((folder / "bench_synth.json").read_text())
    return folder, gen


def run_size(size: str) -> dict:
    folder, gen = practice(size)
    import pyarrow.parquet as pq
    entries = pq.ParquetFile(folder / "time_entries.parquet").metadata.num_rows
    load = measure([PY, "-c", LOAD, str(folder)], f"load {size}")
    check = measure([*CLI, "check", str(folder), "--out", str(OUT / f"run_{size}"), "--quiet"], f"check {size}")
    floor = measure([PY, "-c", FLOOR, str(folder)], f"floor {size}")
    pms = sum(1 for _ in open(OUT / f"run_{size}" / "patient_months.csv")) - 1
    return {"size": size, "patient_months": pms, "time_entries": entries, "synth": gen, "load": load, "check": check, "floor": floor,
            "entries_per_s": round(entries / check["wall_s"]), "check_over_floor": round(check["wall_s"] / floor["wall_s"], 1)}


REPORT_FLOOR = """
import sys, nbformat, papermill, weasyprint
from nbconvert import HTMLExporter
from nbformat.v4 import new_notebook, new_code_cell
src, out = sys.argv[1], sys.argv[2]
nbformat.write(new_notebook(cells=[new_code_cell("x = 1")], metadata={"kernelspec": {"name": "python3", "language": "python",
               "display_name": "python3"}}), src)
papermill.execute_notebook(src, out, kernel_name="python3", progress_bar=False)
body, _ = HTMLExporter(template_name="lab").from_filename(out)
open(out + ".html", "w").write(body)
weasyprint.HTML(string="<p>x</p>").write_pdf(out + ".pdf")
"""


def run_report() -> dict:
    """The quarterly report of a 2,000-patient practice with a year of data (so the trend has three earlier quarters),
    against a floor: papermill running a one-cell notebook, nbconvert's HTML of it and a one-line WeasyPrint PDF."""
    folder = OUT / "practice_report_2000_year"
    if not (folder / "patients.csv").exists():
        measure([*CLI, "synth", "--patients", "2000", "--months", "2025-10..2026-09", "--seed", "11", "--out", str(folder)], "synth report")
    out = OUT / "report_2000"
    r = measure([*CLI, "report", str(folder), "--period", "2026Q3", "--out", str(out)], "report")
    floor = measure([PY, "-c", REPORT_FLOOR, str(OUT / "floor.ipynb"), str(OUT / "floor_out.ipynb")], "report floor")
    return {"patients": 2000, **r, "floor_s": floor["wall_s"], "over_floor": round(r["wall_s"] / floor["wall_s"], 1)}


def run_batch_and_prebill() -> dict:
    """A consultant's batch of 8 practices (reports included) one after another and with --jobs 2, and the monthly
    pre-bill review of the 2,000-patient practice."""
    clients = OUT / "clients_8"
    if not clients.exists():
        subprocess.run([PY, "-c", "import sys; from ccmlib.workbench.portfolio import make_demo_clients; "
                        "make_demo_clients(sys.argv[1], patients=200, which=('csv',) * 8)", str(clients)], check=True, cwd=ROOT)
    for name in ("batch_serial", "batch_jobs2"):
        subprocess.run(["rm", "-rf", str(OUT / name)], check=True)
    serial = measure([*CLI, "batch", str(clients), "--period", "2026Q3", "--out", str(OUT / "batch_serial")], "batch serial")
    jobs2 = measure([*CLI, "batch", str(clients), "--period", "2026Q3", "--out", str(OUT / "batch_jobs2"), "--jobs", "2"], "batch --jobs 2")
    subprocess.run(["rm", "-rf", str(OUT / "prebill")], check=True)
    pre = measure([*CLI, "prebill", str(OUT / "practice_report_2000_year"), "--month", "2026-09", "--out", str(OUT / "prebill")], "prebill")
    return {"batch_serial_s": serial["wall_s"], "batch_jobs2_s": jobs2["wall_s"],
            "batch_speedup": round(serial["wall_s"] / jobs2["wall_s"], 2), "prebill_s": pre["wall_s"],
            "prebill_peak_rss_mb": pre["peak_rss_mb"]}


def table(results: list[dict], report: dict | None) -> str:
    lines = ["| size | patient-months | time entries | synth s | load s | check s | check peak RSS | entries/s | floor s | check / floor |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['size']} | {r['patient_months']:,} | {r['time_entries']:,} | {r['synth']['wall_s']} | {r['load']['wall_s']} | "
                     f"{r['check']['wall_s']} | {r['check']['peak_rss_mb']:,} MB | {r['entries_per_s']:,} | {r['floor']['wall_s']} | "
                     f"{r['check_over_floor']} |")
    if report:
        lines += ["", f"Quarterly report, {report['patients']:,}-patient practice with a year of data, one quarter and its trend "
                  f"(HTML, PDF, Excel, end to end): {report['wall_s']} s, peak RSS {report['peak_rss_mb']:,} MB; floor (papermill, "
                  f"nbconvert and WeasyPrint on a one-cell notebook) {report['floor_s']} s, ratio {report['over_floor']}."]
        if "batch_serial_s" in report:
            lines += ["", f"Batch of 8 practices (200 patients each, reports included): serial {report['batch_serial_s']} s, "
                      f"`--jobs 2` {report['batch_jobs2_s']} s (speed-up {report['batch_speedup']}x). Monthly pre-bill review of the "
                      f"2,000-patient practice: {report['prebill_s']} s, peak RSS {report['prebill_peak_rss_mb']:,} MB."]
    return "\n".join(lines)


def machine() -> str:
    return (f"{platform.machine()}, {psutil.cpu_count(logical=True)} cores, {round(psutil.virtual_memory().total / 2**30)} GiB, "
            f"Python {platform.python_version()}, {date.today().isoformat()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10k,100k,1M", help="comma-separated sizes, or none for the report alone")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--write-readme", action="store_true")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for s in [x for x in a.sizes.split(",") if x.strip() and x.strip() != "none"]:
        print(f"running {s} ...", file=sys.stderr, flush=True)
        results.append(run_size(s.strip()))
    report = None if a.no_report else {**run_report(), **run_batch_and_prebill()}
    text = table(results, report)
    print(f"machine: {machine()}\ncommand: python benchmarks/run.py {' '.join(sys.argv[1:])}\n")
    print(text)
    (OUT / "results.json").write_text(json.dumps({"machine": machine(), "results": results, "report": report}, indent=2))
    if a.write_readme:
        readme = ROOT / "benchmarks" / "README.md"
        body = readme.read_text()
        block = (f"<!-- results:start -->\nMachine: {machine()}.  \nCommand: `python benchmarks/run.py {' '.join(sys.argv[1:])}`\n\n"
                 f"{text}\n<!-- results:end -->")
        readme.write_text(re.sub(r"<!-- results:start -->.*<!-- results:end -->", lambda _: block, body, flags=re.S))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
