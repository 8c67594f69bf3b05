"""Portfolio: audit many client practices (each with its own export layout), keep going past failures,
and compare them side by side."""
from __future__ import annotations

import json
import traceback
from pathlib import Path

import pandas as pd
import yaml

from ccmlib import paths
from ccmlib.engine.pipeline import audit, write_outputs
from ccmlib.errors import InputError
from ccmlib.engine.outputs import RunFolder
from ccmlib.report.privacy import engagement_root
from ccmlib.synth.generator import generate, parse_rates

PORTFOLIO_COLUMNS = ["practice", "period", "status", "error", "claim_lines", "claim_lines_in_error", "error_rate_count",
                     "billed_patient_months", "error_findings", "errors_per_100_billed_pm", "paid_amount", "overpayment", "error_rate_dollars",
                     "overpayment_per_billed_line", "cost_sharing", "missed_revenue", "top_pitfalls", "profile", "folder"]


def discover(clients_dir: str | Path) -> list[Path]:
    """Every sub-folder of CLIENTS_DIR that holds practice files (sorted by name)."""
    root = Path(clients_dir)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (expected one sub-folder per client practice)")
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise InputError(f"{root}: no practice sub-folders found")
    return found


def _top(by_rule: dict, n: int = 3, profile: dict | None = None) -> str:
    """The error rules with the most findings, from the summary's per-rule counts (warnings and opportunities are not
    pitfalls that cost money), with the severities of the run's profile."""
    from ccmlib.engine.profiles import catalog

    errors = set(catalog(profile).query("severity == 'error'")["id"])
    top = sorted(((r, v["findings"]) for r, v in by_rule.items() if r in errors), key=lambda x: (-x[1], x[0]))[:n]
    return ", ".join(f"{k} ({v})" for k, v in top)


def run_batch(clients_dir, period: str, out, reports: bool = True, progress: bool = True, fees=None, jobs: int = 1,
              scheduler: str | None = None, profile=None) -> pd.DataFrame:
    """Audit (and, with ``reports``, render the quarterly report for) each practice; a failing practice becomes a
    ``failed`` row with its error, and the batch goes on. Writes ``OUT/portfolio.csv`` and, with reports, the portfolio
    report ``OUT/portfolio.html`` and ``.pdf`` (the practices side by side and, from the ledger, their quarters).

    ``jobs`` > 1 runs the practices in that many processes on this machine; ``scheduler`` (a Dask distributed address
    such as ``tcp://10.0.0.5:8786``) sends them to that cluster's workers, which must see the same file system. Each
    practice is the same job either way, so the files are the same as a serial run's."""
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more")
    if scheduler and jobs > 1:
        raise InputError("give either --jobs N (this machine) or --scheduler ADDRESS (a Dask cluster), not both")
    practices = discover(clients_dir)
    from ccmlib.engine.profiles import option as profile_option
    profile = profile_option(profile)  # every practice under the same profile; a bad file stops the batch before any work
    with RunFolder(out, "batch") as rf:  # checked and locked before the first practice
        ledger = engagement_root(rf.path) / "ledger.sqlite"
        df = _run_all(practices, period, rf.path, reports, progress, ledger, fees, jobs, scheduler, profile)
        stage = rf.stage()
        df.to_csv(stage / "portfolio.csv", index=False, lineterminator="\n")
        if reports:
            from ccmlib.workbench.portfolio_report import write_portfolio_report
            write_portfolio_report(df, ledger, stage, period)
        rf.publish(stage, add_only=True)  # never remove another practice's folder or an earlier file
    return df


def practice_row(name: str, run_dir: Path, folder: Path) -> dict:
    """A practice's portfolio row from its run folder: the engine's summary (run.json, after auditor decisions), never
    recomputed."""
    run = json.loads((Path(run_dir) / "run.json").read_text())
    summ = run["summary"]
    billed = summ.get("billed_patient_months", 0)
    return {"practice": name, "period": run["period"]["label"], "status": "ok", "error": "", "claim_lines": summ["claim_lines"],
            "claim_lines_in_error": summ["claim_lines_not_supported"], "error_rate_count": round(summ["error_rate_count"], 4),
            "billed_patient_months": billed, "error_findings": summ["findings"]["error"],
            "errors_per_100_billed_pm": summ["errors_per_100_billed_patient_months"],
            "paid_amount": summ["paid_amount"], "overpayment": summ["overpayment"], "cost_sharing": summ.get("cost_sharing", 0.0),
            "error_rate_dollars": round(summ["error_rate_dollars"], 4),
            "overpayment_per_billed_line": summ["overpayment_per_claim_line"],
            "missed_revenue": summ["missed_amount"], "top_pitfalls": _top(summ.get("by_rule", {}), profile=run.get("profile")),
            "profile": (run.get("profile") or {}).get("name", ""), "folder": str(folder)}


def practice_job(folder: Path, period: str, out: Path, reports: bool, ledger: Path, fees=None, profile=None) -> dict:
    """One practice of a batch: audit (and report); a failure becomes a ``failed`` row, never an exception (the same
    function runs in this process, in a local pool or on a Dask worker)."""
    folder, out = Path(folder), Path(out)
    dest = out / folder.name
    try:
        if reports:
            from ccmlib.report.render import render_report
            rep = render_report(folder, period, dest, practice_name=folder.name, ledger=ledger, fees=fees, profile=profile)
            run_dir = rep.folder / "audit"
        else:
            res = audit(folder, period=period, fees=fees, profile=profile)
            run_dir = write_outputs(res, dest)
        return practice_row(folder.name, run_dir, dest)
    except Exception as exc:  # keep going: the failure is reported, not raised
        msg = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, InputError) and type(exc).__name__ != "ReportError":
            msg += " | " + traceback.format_exc(limit=2).strip().splitlines()[-1]
        return {"practice": folder.name, "period": period, "status": "failed", "error": msg, "folder": ""}


def _run_all(practices: list[Path], period: str, out: Path, reports: bool, progress: bool, ledger: Path, fees=None,
             jobs: int = 1, scheduler: str | None = None, profile=None) -> pd.DataFrame:
    args = dict(period=period, out=out, reports=reports, ledger=ledger, fees=fees, profile=profile)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(practices), desc="practices", unit="practice", disable=paths.progress_off())
    rows: dict[int, dict] = {}
    if scheduler:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise InputError("--scheduler needs Dask distributed: pip install 'dask[distributed]'") from None
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({exc})") from None
        with client:
            futures = {client.submit(practice_job, str(f), pure=False, **args): i for i, f in enumerate(practices)}
            for fut in as_completed(futures):
                rows[futures[fut]] = fut.result()
                bar and bar.update(1)
    elif jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed as done

        with ProcessPoolExecutor(max_workers=min(jobs, len(practices)), mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(practice_job, f, **args): i for i, f in enumerate(practices)}
            for fut in done(futures):
                rows[futures[fut]] = fut.result()
                bar and bar.update(1)
    else:
        for i, f in enumerate(practices):
            rows[i] = practice_job(f, **args)
            bar and bar.update(1)
    if bar:
        bar.close()
    return pd.DataFrame([rows[i] for i in range(len(practices))]).reindex(columns=PORTFOLIO_COLUMNS)


def pitfall_matrix(portfolio: pd.DataFrame) -> pd.DataFrame:
    """Practice x rule counts of error and warning findings (successful practices)."""
    parts = []
    for r in portfolio[portfolio["status"] == "ok"].itertuples():
        folder = Path(r.folder)
        path = folder / "audit" / "findings.csv" if (folder / "audit").is_dir() else folder / "findings.csv"
        f = pd.read_csv(path, dtype=str)
        f = f[f["severity"].isin(["error", "warning"])]
        parts.append(f["rule_id"].value_counts().rename(r.practice))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, axis=1).fillna(0).astype(int).sort_index()


def comparison_figure(portfolio: pd.DataFrame):
    """Error rate (lines), overpayment and missed revenue by practice, in the portfolio table's words: horizontal bars
    in the table's order, the practice names written once, level (no rotated labels crowding), however many practices."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter, StrMethodFormatter

    ok = portfolio[portfolio["status"] == "ok"]
    names = ok["practice"].astype(str).tolist()
    fig, axes = plt.subplots(1, 3, figsize=(10, max(2.0, 0.8 + 0.28 * len(names))), sharey=True)
    y = list(range(len(names)))
    for a, col, scale, color, label in ((axes[0], "error_rate_count", 100, "#6a8caf", "Error rate (lines)"),
                                        (axes[1], "overpayment", 1, "#b2182b", "Overpayment"),
                                        (axes[2], "missed_revenue", 1, "#4393c3", "Missed revenue")):
        a.barh(y, ok[col].astype(float).fillna(0) * scale, color=color, height=0.6)
        a.set_title(label, fontsize=10)
        a.xaxis.set_major_formatter(PercentFormatter(decimals=0) if col == "error_rate_count" else StrMethodFormatter("${x:,.0f}"))
        a.tick_params(axis="x", labelsize=8)
        a.spines[["top", "right"]].set_visible(False)
        a.xaxis.set_major_locator(plt.MaxNLocator(4))
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].invert_yaxis()  # the first practice on top, as in the table
    fig.tight_layout()
    return fig


def make_demo_clients(root: str | Path, patients: int = 40, months: str = "2026-07..2026-09",
                      which: tuple[str, ...] = ("csv", "excel", "mapping", "broken")) -> Path:
    """Synthetic client practices, each exporting its own way: ``csv`` (the contract layout), ``excel`` (one
    workbook), ``mapping`` (renamed columns and recoded values with a mapping.yml) and ``broken`` (a time log
    that is not UTF-8)."""
    root = Path(root)
    for i, kind in enumerate(which):
        folder = root / f"clinic_{chr(97 + i)}_{kind}"
        generate(patients, months, 101 + i, rates=parse_rates(["0.03"]), out=folder)
        (folder / "truth.csv").unlink()
        if kind == "excel":
            with pd.ExcelWriter(folder / "export.xlsx") as xw:
                for p in sorted(folder.glob("*.csv")):
                    pd.read_csv(p, dtype=str, keep_default_na=False).to_excel(xw, sheet_name=p.stem, index=False)
                    p.unlink()
        elif kind == "mapping":
            te = pd.read_csv(folder / "time_entries.csv", dtype=str, keep_default_na=False)
            te = te.rename(columns={"patient_id": "Pt MRN", "minutes": "Mins", "staff_id": "Staff"})
            te["activity"] = te["activity"].replace({"medication_reconciliation": "Med Rec"})
            te.to_csv(folder / "time_entries.csv", index=False)
            (folder / "mapping.yml").write_text(yaml.safe_dump({"time_entries": {
                "columns": {"Pt MRN": "patient_id", "Mins": "minutes", "Staff": "staff_id"},
                "values": {"activity": {"Med Rec": "medication_reconciliation"}}}}))
        elif kind == "broken":
            raw = (folder / "time_entries.csv").read_bytes()
            (folder / "time_entries.csv").write_bytes(raw.replace(b"Reconciled", "R\xe9conciled".encode("latin-1"), 1))
    return root
