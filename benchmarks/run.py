"""ccm-audit benchmarks (run by hand, never inside the test suite).

    .venv/bin/python benchmarks/run.py                       # 10k, 100k, 1M patient-months + the report
    .venv/bin/python benchmarks/run.py --sizes 10k,100k      # a quicker subset (--no-report: the sizes alone)
    .venv/bin/python benchmarks/run.py --sizes 10m           # 10M patient-months (generated in chunks of 100,000 patients)
    .venv/bin/python benchmarks/run.py --write-readme        # also rewrite the table in benchmarks/README.md

For each size it generates a synthetic practice with the project's generator (Parquet, 6-10 time
entries per patient-month, about 8 on average), then times whole processes: (a) loading,
(b) the full rule check (`ccm-audit check`), and a floor: the least work any correct engine must
do on the same data (read the Parquet tables, sort the time entries by staff, date and start,
and one group-by sum of minutes per patient-month), and (c) the two peers in benchmarks/peers/: what an
analyst writes in an afternoon for the core of the audit (qualifying minutes, threshold dates, 99490/99439
units and overpayment, every CCM claim line to CSV) in DuckDB and in Polars, also whole processes (`pip install
-e '.[bench]'`; tests/test_peers.py checks that they agree with the engine on what they compute). It reports wall
time, peak RSS (the larger of the process tree's RSS sampled every 20 ms and the kernel's maximum resident set of
the process and its children, from wait4), rows per second and the ratios check/floor and check/DuckDB. (d) renders
the quarterly report (HTML, PDF, Excel) for a 2,000-patient practice, one quarter.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PY = sys.executable
CLI = [PY, "-m", "ccmlib.cli"]
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}
#: sizes the generator cannot write in one piece on this machine (its memory grows about 7 GB per million patient-months):
#: written CHUNK_PATIENTS patients at a time (100,000 patients, 300,000 patient-months: 3.0 GB peak RSS)
CHUNKED = {"10M"}
CHUNK_PATIENTS = 100_000
MONTHS, PERIOD = "2026-01..2026-03", "2026Q1"
#: the check in shards (`check --shards N --shard-jobs K`) measured beside the check at once: (N, K) per size
SHARDED = {"1M": (12, 2), "10M": (64, 2)}
PEERS = {"duckdb": ROOT / "benchmarks" / "peers" / "duckdb_core.py", "polars": ROOT / "benchmarks" / "peers" / "polars_core.py"}

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


def _children(p) -> list:
    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


def measure(cmd: list[str], label: str) -> dict:
    """Run a command; its wall time and peak RSS: the larger of the process tree's RSS (sampled every 20 ms, summed
    over the processes alive at once) and the kernel's maximum resident set of the process and the children it waited
    for (wait4's ru_maxrss, exact for one process however short its peak). CPU seconds: the larger of wait4's (the
    process and the children it waited for) and the sum over every process of the tree last sampled (the check in
    shards forks its steps from a fork server, which waits for them, not the check)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)
        tree, peak, cpu_of = psutil.Process(proc.pid), 0, {}
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = 0
            for p in [tree, *_children(tree)]:
                try:
                    with p.oneshot():
                        rss += p.memory_info().rss
                        t = p.cpu_times()
                        cpu_of[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            peak = max(peak, rss)
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{stderr[-3000:]}")
    peak = max(peak, usage.ru_maxrss * 1024)  # ru_maxrss is in KiB on Linux
    cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu_of.values()))  # less sensitive to a busy machine than wall time
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(peak / 2**20), "stdout": stdout.strip()[-200:]}


def chunked_synth_option() -> str | None:
    """The generator's option for writing a practice in chunks, if `ccm-audit synth` has one."""
    text = subprocess.run([*CLI, "synth", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    found = re.findall(r"(--[\w-]*chunk[\w-]*)", text)
    return found[0] if found else None


class NotPossible(Exception):
    """A size this machine or the generator cannot run yet (the reason is reported in the table)."""


def practice(size: str) -> tuple[Path, dict]:
    n_pm = SIZES[size]
    folder = OUT / f"practice_{size}"
    if not (folder / "bench_synth.json").exists():  # written once the practice is (an interrupted one is made again)
        cmd = [*CLI, "synth", "--patients", str(n_pm // 3), "--months", MONTHS, "--seed", "7", "--format", "parquet",
               "--entries", "6-10", "--out", str(folder)]
        if size in CHUNKED:
            option = chunked_synth_option()
            if option is None:
                raise NotPossible(f"{size} patient-months: not possible with this `ccm-audit synth`: it builds every table of "
                                  "a practice in memory before writing it (about 7 GB per million patient-months, so about "
                                  "70 GB for 10M on this 24 GiB machine) and has no option to write a practice in chunks.")
            cmd += [option, str(CHUNK_PATIENTS)]
        r = measure(cmd, f"synth {size}")
        gen = {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}
        (folder / "bench_synth.json").write_text(json.dumps(gen))
    gen = json.loads((folder / "bench_synth.json").read_text())
    return folder, gen


def rows(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f) - 1


def same_outputs(one: Path, other: Path) -> bool:
    """The four tables of two run folders byte for byte (run.json differs in its times, command and paths)."""
    return all((one / f"{t}.csv").read_bytes() == (other / f"{t}.csv").read_bytes()
               for t in ("findings", "claim_lines", "patient_months", "data_quality"))


def run_size(size: str) -> dict:
    folder, gen = practice(size)
    import pyarrow.parquet as pq
    entries = pq.ParquetFile(folder / "time_entries.parquet").metadata.num_rows
    run = OUT / f"run_{size}"
    sharded = None
    if size in SHARDED:
        n, k = SHARDED[size]
        subprocess.run(["rm", "-rf", str(OUT / f"run_{size}_shards")], check=True)
        sharded = measure([*CLI, "check", str(folder), "--out", str(OUT / f"run_{size}_shards"), "--period", PERIOD, "--shards",
                           str(n), "--shard-jobs", str(k), "--quiet"], f"check {size} in {n} shards")
        sharded.update(shards=n, jobs=k)
    from ccmlib.engine.capacity import choose_shards
    from ccmlib.errors import InputError
    try:
        n_auto, why = choose_shards(folder)  # what `check` without --shards does with this machine's memory
    except InputError as exc:
        n_auto, why = 0, str(exc)
    if n_auto != 1:  # not at once on this machine: sharded to fit its memory limit, or refused before loading
        refused = (f"{size} patient-months: generated ({entries:,} time entries) in {gen['wall_s']:,} s, peak RSS "
                   f"{gen['peak_rss_mb']:,} MB (`synth --chunk-patients {CHUNK_PATIENTS}`); `ccm-audit check` does not check "
                   f"it at once on this machine: " + why.replace(str(ROOT) + "/", ""))
        if sharded is None:
            raise NotPossible(refused)
        return big_size(size, folder, entries, gen, sharded, refused)
    check = measure([*CLI, "check", str(folder), "--out", str(run), "--period", PERIOD, "--quiet"], f"check {size}")
    if sharded is not None:
        sharded["same_outputs"] = same_outputs(run, OUT / f"run_{size}_shards")
    load = measure([PY, "-c", LOAD, str(folder)], f"load {size}")  # after the check: what check refuses is not loaded either
    floor = measure([PY, "-c", FLOOR, str(folder)], f"floor {size}")
    pms, lines = rows(run / "patient_months.csv"), rows(run / "claim_lines.csv")
    peers = {}
    for name, script in PEERS.items():
        out = OUT / f"{name}_{size}.csv"
        peers[name] = measure([PY, str(script), str(folder), str(out), "--period", PERIOD], f"{name} {size}")
        peers[name]["claim_lines"] = rows(out)
        if peers[name]["claim_lines"] != lines:  # the same lines, or the comparison is not like for like
            raise SystemExit(f"{name} {size}: {peers[name]['claim_lines']:,} claim lines written, the engine {lines:,}")
    if sharded is not None:
        sharded["over_duckdb"] = round(sharded["wall_s"] / peers["duckdb"]["wall_s"], 1)
    return {"size": size, "patient_months": pms, "time_entries": entries, "claim_lines": lines, "synth": gen, "load": load,
            "check": check, "floor": floor, **peers, "entries_per_s": round(entries / check["wall_s"]),
            "check_over_floor": round(check["wall_s"] / floor["wall_s"], 1),
            "check_over_duckdb": round(check["wall_s"] / peers["duckdb"]["wall_s"], 1),
            "check_over_polars": round(check["wall_s"] / peers["polars"]["wall_s"], 1), "sharded": sharded}


def big_size(size: str, folder: Path, entries: int, gen: dict, sharded: dict, refused: str) -> dict:
    """A size only the check in shards can do on this machine: beside it the DuckDB sketch (the Polars sketch, the
    loading and the pandas floor hold the whole practice in memory, about 5 GB per million patient-months)."""
    run = OUT / f"run_{size}_shards"
    lines = rows(run / "claim_lines.csv")
    out = OUT / f"duckdb_{size}.csv"
    duck = measure([PY, str(PEERS["duckdb"]), str(folder), str(out), "--period", PERIOD], f"duckdb {size}")
    duck["claim_lines"] = rows(out)
    if duck["claim_lines"] != lines:
        raise SystemExit(f"duckdb {size}: {duck['claim_lines']:,} claim lines written, the engine {lines:,}")
    sharded["over_duckdb"] = round(sharded["wall_s"] / duck["wall_s"], 1)
    return {"size": size, "patient_months": rows(run / "patient_months.csv"), "time_entries": entries, "claim_lines": lines,
            "synth": gen, "duckdb": duck, "sharded": sharded, "refused_at_once": refused}


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
    lines = ["| size | patient-months | time entries | claim lines | synth s | load s | check s | check peak RSS | entries/s | floor s "
             "| check / floor | DuckDB s | DuckDB peak RSS | Polars s | Polars peak RSS | check / DuckDB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for r in results:
        if "not_possible" in r:
            lines.append(f"| {r['size']} | not yet possible (below) |" + " |" * 14)
            notes.append(r["not_possible"])
            continue
        if "refused_at_once" in r:
            d = r["duckdb"]
            lines.append(f"| {r['size']} | {r['patient_months']:,} | {r['time_entries']:,} | {r['claim_lines']:,} | {r['synth']['wall_s']} | "
                         f"- | in shards (below) | - | - | - | - | {d['wall_s']} | {d['peak_rss_mb']:,} MB | - | - | - |")
            notes.append(r["refused_at_once"])
            continue
        d, p = r["duckdb"], r["polars"]
        lines.append(f"| {r['size']} | {r['patient_months']:,} | {r['time_entries']:,} | {r['claim_lines']:,} | {r['synth']['wall_s']} | "
                     f"{r['load']['wall_s']} | {r['check']['wall_s']} | {r['check']['peak_rss_mb']:,} MB | {r['entries_per_s']:,} | "
                     f"{r['floor']['wall_s']} | {r['check_over_floor']} | {d['wall_s']} | {d['peak_rss_mb']:,} MB | {p['wall_s']} | "
                     f"{p['peak_rss_mb']:,} MB | {r['check_over_duckdb']} |")
    shard_rows = [r for r in results if r.get("sharded")]
    if shard_rows:
        lines += ["", "The check in shards (`check --shards N --shard-jobs K`), the same practices:", "",
                  "| size | shards | at once | check s | check peak RSS | check / DuckDB | run folder as the check at once |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for r in shard_rows:
            x = r["sharded"]
            same = {True: "byte-identical (four CSVs)", False: "DIFFERENT", None: "(no check at once to compare)"}[x.get("same_outputs")]
            lines.append(f"| {r['size']} | {x['shards']} | {x['jobs']} | {x['wall_s']} | {x['peak_rss_mb']:,} MB | {x.get('over_duckdb', '-')} | {same} |")
    lines += [f"\n{n}" for n in notes]
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
    ap.add_argument("--sizes", default="10k,100k,1M", help="comma-separated sizes (10k, 100k, 1M, 10M), or none for the report alone")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--write-readme", action="store_true")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    names = {k.lower(): k for k in SIZES}
    sizes = [x.strip() for x in a.sizes.split(",") if x.strip() and x.strip() != "none"]
    unknown = [x for x in sizes if x.lower() not in names]
    if unknown:
        ap.error(f"--sizes {','.join(unknown)}: expected some of {', '.join(SIZES)} (or none)")
    results = []
    for s in (names[x.lower()] for x in sizes):
        print(f"running {s} ...", file=sys.stderr, flush=True)
        try:
            results.append(run_size(s))
        except NotPossible as e:
            print(str(e), file=sys.stderr)
            results.append({"size": s, "not_possible": str(e)})
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
