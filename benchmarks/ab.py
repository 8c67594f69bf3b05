"""Two versions of the engine side by side on one practice (run by hand, never inside the test suite).

    .venv/bin/python benchmarks/ab.py 043d365 HEAD                       # the 10k practice of run.py, 5 pairs
    .venv/bin/python benchmarks/ab.py 043d365 HEAD --practice data/demo --period 2026Q1 --pairs 3

This machine's speed drifts by tens of percent within minutes, so one timing of each version says little about a
change of a few percent. The script checks the practice with each version in turn (OLD, NEW, OLD, NEW, ...: whole
`ccm-audit check` processes, each version from a git work tree of its commit), and reports per version the wall and
CPU seconds (least and median), the Python function calls of one audit (cProfile, warm, in one process: a count of
work that does not drift with the machine) and whether the two versions' run folders hold the same four tables byte
for byte. The work trees are removed at the end.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TABLES = ("findings", "claim_lines", "patient_months", "data_quality")

#: one warm audit of the practice under cProfile, in the version on PYTHONPATH: its function calls
CALLS = """
import cProfile, pstats, sys
from ccmlib.engine.pipeline import audit
audit(sys.argv[1], period=sys.argv[2])
p = cProfile.Profile(); p.enable(); audit(sys.argv[1], period=sys.argv[2]); p.disable()
print(pstats.Stats(p).total_calls)
"""


def timed_check(tree: Path, practice: str, period: str, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user and system, the process and its children) of one ``check`` by the version in ``tree``."""
    if out.exists():
        shutil.rmtree(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([PY, "-m", "ccmlib.cli", "check", practice, "--period", period, "--out", str(out), "--quiet"],
                   env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="a commit (or anything git names one by)")
    ap.add_argument("new", help="another commit; HEAD for the last one (uncommitted edits are not seen)")
    ap.add_argument("--practice", default=str(ROOT / "benchmarks" / "out" / "practice_10k"),
                    help="a practice folder (default: run.py's 10k practice)")
    ap.add_argument("--period", default="2026Q1")
    ap.add_argument("--pairs", type=int, default=5, help="checks by each version, alternated (default 5)")
    a = ap.parse_args()
    a.practice = str(Path(a.practice).resolve())  # each version runs in its own work tree (its code first on sys.path)
    if not Path(a.practice).is_dir():
        ap.error(f"--practice {a.practice}: no such folder (run benchmarks/run.py --sizes 10k first, or name one)")
    if a.pairs < 1:
        ap.error("--pairs: at least 1")
    work = Path(tempfile.mkdtemp(prefix="ccm-ab-"))
    trees = {}
    try:
        for name in ("old", "new"):
            rev = getattr(a, name)
            tree = work / name
            r = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], capture_output=True, text=True)
            if r.returncode:
                sys.exit(f"ab.py: cannot check out {rev}: {r.stderr.strip()}")
            trees[name] = tree
        times = {name: [] for name in trees}
        for i in range(a.pairs):
            for name, tree in trees.items():
                times[name].append(timed_check(tree, a.practice, a.period, work / f"run_{name}"))
                print(f"pair {i + 1}/{a.pairs} {name}: {times[name][-1][0]:.2f} s", file=sys.stderr)
        calls = {name: int(subprocess.run([PY, "-c", CALLS, a.practice, a.period], env={**os.environ, "PYTHONPATH": str(tree)},
                                          cwd=tree, check=True, capture_output=True, text=True).stdout.split()[-1])
                 for name, tree in trees.items()}
        same = all((work / "run_old" / f"{t}.csv").read_bytes() == (work / "run_new" / f"{t}.csv").read_bytes() for t in TABLES)
        print(f"practice: {a.practice} ({a.period}), {a.pairs} alternated pairs\n")
        print("| version | wall s (least / median) | CPU s (median) | Python function calls per audit |")
        print("|---|---:|---:|---:|")
        for name in trees:
            wall = [w for w, _ in times[name]]
            cpu = [c for _, c in times[name]]
            print(f"| {name} {getattr(a, name)} | {min(wall):.2f} / {statistics.median(wall):.2f} | {statistics.median(cpu):.2f} "
                  f"| {calls[name]:,} |")
        print(f"\nthe four tables byte for byte: {'the same' if same else 'DIFFERENT'}")
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
