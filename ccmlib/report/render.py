"""Render the quarterly review: papermill -> nbconvert (our template) -> PDF (WeasyPrint) + ledger.

The report is built in a staging folder and moved into place only when every file exists, so a
failed run never leaves a half-written report where a finished one is expected. A failed cell's
executed notebook (with the error shown) and its HTML are kept in ``OUT.failed/`` as evidence.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .. import paths
from ..errors import InputError
from ..period import parse_period
from .ledger import add_run
from .quarterly import check_parameters
from .record import MIME, read_records

KERNEL = "python3"
NOTEBOOK = "quarterly_review.ipynb"


class ReportError(Exception):
    """A notebook cell failed; the message carries the cell's error and where the evidence is."""


@dataclass
class Report:
    folder: Path
    notebook: Path
    html: Path
    pdf: Path
    workpapers: Path
    headline: dict
    provenance: dict


def _clean(nb) -> None:
    """Drop stderr streams (warnings) from the report; keep everything else."""
    for cell in nb.cells:
        if cell.get("outputs"):
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                            and not (o.get("output_type") == "display_data" and set(o.get("data", {})) == {MIME})]


def to_html(nb, out: Path, include_code: bool = False) -> Path:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(paths.template_dir())])
    exporter.exclude_input = not include_code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    out.write_text(body, encoding="utf-8")
    return out


def to_pdf(html: Path, pdf: Path) -> Path:
    """Print the HTML to PDF offline with WeasyPrint (falls back to Debian's headless chromium)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # no Pango on this machine
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            raise InputError(f"cannot make a PDF: WeasyPrint is unusable ({exc}) and no chromium is installed") from None
        import subprocess
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                        f"--print-to-pdf={pdf}", "--no-pdf-header-footer", html.resolve().as_uri()], check=True, capture_output=True, timeout=300)
        return pdf
    weasyprint.HTML(filename=str(html)).write_pdf(str(pdf))
    return pdf


def render_report(data_dir, period: str, out, sample_size: int | None = None, seed=None, strata: str | None = None,
                  practice_name: str | None = None, show_identifiers: bool = False, ledger=None, overrides=None,
                  timeout: int = 900, progress: bool = False) -> Report:
    """Execute the quarterly-review notebook and write the executed notebook, report.html, report.pdf and workpapers.xlsx."""
    data = Path(data_dir)
    if not data.is_dir():
        raise InputError(f"{data}: not a folder (expected a practice data folder)")
    parse_period(period)
    out = Path(out)
    ledger = Path(ledger) if ledger else out.parent / "ledger.sqlite"
    if overrides is None and (out / "audit" / "overrides.csv").is_file():
        overrides = out / "audit" / "overrides.csv"  # decisions recorded against the previous run of this report
    if overrides is not None and not Path(overrides).is_file():
        raise InputError(f"{overrides}: overrides file not found")
    params = check_parameters({"data_dir": str(data.resolve()), "period": period, "sample_size": sample_size,
                               "seed": None if seed is None else str(seed), "strata": strata,
                               "practice_name": practice_name or data.resolve().name, "output_dir": None,
                               "show_identifiers": bool(show_identifiers), "ledger": str(ledger.resolve()),
                               "overrides": str(Path(overrides).resolve()) if overrides else None})
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    params["output_dir"] = str(stage.resolve())
    if overrides:  # keep the decision log inside the staging folder, so replacing OUT cannot lose it
        (stage / "audit").mkdir()
        shutil.copyfile(overrides, stage / "audit" / "overrides.csv")
        params["overrides"] = str((stage / "audit" / "overrides.csv").resolve())
    nb_in = paths.notebook(NOTEBOOK)
    executed = stage / NOTEBOOK
    import papermill as pm

    try:
        pm.execute_notebook(str(nb_in), str(executed), parameters=params, kernel_name=KERNEL, execution_timeout=timeout,
                            start_timeout=120, cwd=str(nb_in.parent), progress_bar=progress, log_output=False)
    except pm.PapermillExecutionError as exc:
        failed = out.with_name(out.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        nb = nbformat.read(str(executed), as_version=4)
        to_html(nb, stage / "error.html", include_code=True)
        for name in ("report.html", "report.pdf", "workpapers.xlsx"):
            (stage / name).unlink(missing_ok=True)
        stage.rename(failed)
        add_run(ledger, params["practice_name"], period, "failed", str(failed), [], params, None)
        raise ReportError(f"cell {exc.exec_count} failed: {exc.ename}: {exc.evalue}; the executed notebook with the error is "
                          f"{failed / NOTEBOOK}") from None
    except Exception:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    nb = nbformat.read(str(executed), as_version=4)
    rec = read_records(nb)
    nb.metadata["ccm_audit"] = rec.get("provenance", {})
    _clean(nb)
    html = to_html(nb, stage / "report.html")
    to_pdf(html, stage / "report.pdf")
    for name in ("report.html", "report.pdf", "workpapers.xlsx", NOTEBOOK):
        if not (stage / name).is_file():
            shutil.rmtree(stage, ignore_errors=True)
            raise ReportError(f"the report run did not produce {name}")
    if out.exists():
        shutil.rmtree(out)
    stage.rename(out)
    add_run(ledger, params["practice_name"], period, "ok", str(out), rec.get("provenance", {}).get("inputs", []),
            {k: v for k, v in params.items() if k != "output_dir"}, rec.get("headline"))
    return Report(out, out / NOTEBOOK, out / "report.html", out / "report.pdf", out / "workpapers.xlsx", rec.get("headline", {}),
                  rec.get("provenance", {}))
