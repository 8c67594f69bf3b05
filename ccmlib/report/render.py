"""Render the quarterly review: papermill -> nbconvert (our template) -> PDF (WeasyPrint) + ledger.

The report is built in a staging folder and moved into place only when every file exists, so a
failed run never leaves a half-written report where a finished one is expected. A failed cell's
executed notebook (with the error shown) and its HTML are kept in ``OUT.failed/`` as evidence.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

# jsonschema (under nbformat) checks the "iri" string formats with rfc3987-syntax when it is installed (an extra that
# jupyter-events pulls in), whose grammar takes over a second to build at import. Notebook schemas have no such format,
# so this process does without it; anything that imports it earlier keeps it.
sys.modules.setdefault("rfc3987_syntax", None)
import nbformat  # noqa: E402

from ccmlib import paths
from ccmlib.errors import InputError
from ccmlib.engine.outputs import RunFolder
from ccmlib.engine.periods import parse_period
from ccmlib.report.ledger import add_run
from ccmlib.report.quarterly import check_parameters
from ccmlib.report.privacy import engagement_root
from ccmlib.report.record import MIME, read_records

KERNEL = "python3"


def command_line() -> str:
    """The command that is rendering the report as its user typed it (`ccm-audit report ...`), for the provenance; a call
    from Python is named as such."""
    import shlex

    if sys.argv and Path(sys.argv[0]).name in ("ccm-audit", "cli.py", "__main__.py"):
        return shlex.join(["ccm-audit", *sys.argv[1:]])
    return "ccmlib.render_report (called from Python)"


def local_kernel_manager(folder: str):
    """A kernel manager whose kernel talks over local (IPC) sockets in ``folder`` (private, made by the caller) instead of
    TCP ports: nothing listens on the network, and the kernel has no cause to warn on stderr that it runs over TCP
    unencrypted."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self):
            return "ipc"

        @default("ip")
        def _ip_default(self):  # IPC sockets are files: <ip>-<port>, here in a folder only this run uses
            return os.path.join(folder, "kernel")

    return LocalKernelManager
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


_ACTIVE = re.compile(r"<\s*(script|iframe|object|embed|base|form|meta\s[^>]*http-equiv)\b|<[^>]*\son[a-z]+\s*=|"
                     r"(href|src|action)\s*=\s*[\"']?\s*(javascript|vbscript|data:text/html)", re.IGNORECASE)


def css_string(value) -> str:
    """Text safe inside a double-quoted CSS string in a <style> element: everything but letters, digits and spaces
    as a CSS hex escape (so no quote, backslash or </style> can end it)."""
    return "".join(c if c.isalnum() or c == " " else f"\\{ord(c):x} " for c in str(value))


def assert_inert(html: str, name: str = "report.html") -> None:
    """Refuse to write HTML with active content (the template has none; data is escaped on its way in, and this is
    the last line of defence if something was not)."""
    m = _ACTIVE.search(html)
    if m:
        at = html[max(0, m.start() - 60): m.end() + 60].replace("\n", " ")
        raise ReportError(f"{name} would contain active content ({m.group(0)!r} near {at!r}); not written")


def to_html(nb, out: Path, include_code: bool = False) -> Path:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(paths.template_dir())])
    exporter.exclude_input = not include_code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    assert_inert(body, out.name)
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


def _preflight(data: Path) -> None:
    """Cheap checks of the practice folder before a notebook starts (a folder, its files and mapping.yml)."""
    from ccmlib.intake.sources import find_sources, load_mapping

    find_sources(data)
    load_mapping(data)


def render_report(data_dir, period: str, out, sample_size: int | None = None, seed=None, strata: str | None = None,
                  practice_name: str | None = None, show_identifiers: bool = False, ledger=None, overrides=None,
                  timeout: int = 900, progress: bool = False, prepared_by: str | None = None, prepared_for: str | None = None,
                  final: bool = False, fees=None, repayment_path: str | None = None, command: str | None = None,
                  profile=None, encounters_from=None) -> Report:
    """Audit ``data_dir`` (under ``profile``, :mod:`ccmlib.engine.profiles`) into ``out/audit/`` and render the report from that run folder (:func:`render_run`): the
    executed notebook, report.html, report.pdf and workpapers.xlsx.

    ``out`` must be a new or empty folder or an earlier report folder (:mod:`ccmlib.outdir`); it is checked and locked
    before anything runs. The report is built in a staging folder inside ``out`` and its files are moved into place
    only when every one exists; a failed cell leaves the previous report as it was and its evidence in ``out/failed/``."""
    from ccmlib.report.quarterly import audit_for_report
    from ccmlib.report.privacy import load_salt

    data = Path(data_dir)
    if not data.is_dir():
        raise InputError(f"{data}: not a folder (expected a practice data folder)")
    parse_period(period)
    from ccmlib.report.repayment import check_path
    check_path(repayment_path)
    if final and not sample_size and (Path(out) / "audit" / "sample.csv").is_file():
        raise InputError(f"--final: the previous run of {out} drew a sample for chart review; give the same --sample and --seed "
                         f"so that the final report appraises the reviewed sample")
    out = Path(out)
    ledger = Path(ledger) if ledger else engagement_root(out) / "ledger.sqlite"
    live = out / "audit" / "overrides.csv"  # decisions recorded against the previous run of this report
    if overrides is not None and not Path(overrides).is_file():
        raise InputError(f"{overrides}: overrides file not found")
    if fees is not None and not Path(fees).is_file():
        raise InputError(f"{fees}: fee schedule file not found")
    from ccmlib.engine.profiles import option as profile_option
    profile = profile_option(profile)  # a bad profile file stops the run here (exit 2), before any work
    from ccmlib.intake.dates import option_date
    encounters_from = option_date(encounters_from, "--encounters-from")  # likewise a bad date
    if overrides is not None and live.is_file() and Path(overrides).resolve() != live.resolve() \
            and Path(overrides).read_bytes() != live.read_bytes():
        raise InputError(f"{live} already holds auditor decisions that differ from --overrides {overrides}; merge them into "
                         f"one file or choose another --out")
    name = practice_name or data.resolve().name
    with RunFolder(out, "report") as rf:
        _preflight(data)
        if overrides is None and live.is_file():
            overrides = live
        stage = rf.stage()
        params = check_parameters({"audit_dir": str((stage / "audit").resolve()), "practice_name": name,
                                   "output_dir": str(stage.resolve()), "show_identifiers": bool(show_identifiers),
                                   "ledger": str(ledger.resolve()), "prepared_by": prepared_by, "prepared_for": prepared_for,
                                   "final": bool(final), "repayment_path": repayment_path, "command": command or command_line()})
        audit_for_report(data, period, stage / "audit", sample_size=sample_size, seed=None if seed is None else str(seed),
                         strata=strata, practice_name=name, ledger=str(ledger), overrides=str(overrides) if overrides else None,
                         fees=str(fees) if fees else None, final=final, command=params["command"], salt=load_salt(ledger.parent),
                         profile=profile, encounters_from=encounters_from, progress=progress)
        rec = _render(rf, stage, params, ledger, period, timeout, progress)
        copied = stage / "audit" / "overrides.csv"
        if copied.is_file() and live.is_file():
            copied.unlink()  # the live decision log stays as the reviewer left it (it may have grown meanwhile)
        rf.publish(stage)
    return _finish(out, ledger, params, period, rec)


def render_run(audit_dir, out, practice_name: str | None = None, show_identifiers: bool = False, ledger=None,
               prepared_by: str | None = None, prepared_for: str | None = None, final: bool = False,
               repayment_path: str | None = None, command: str | None = None, timeout: int = 900, progress: bool = False) -> Report:
    """Render the report of an audit run folder without re-auditing (`ccm-audit render AUDIT_DIR --out OUT`): a signed
    run re-rendered gives the same figures and the same tables. ``audit_dir`` is a report's ``audit/`` or a ``check`` run
    folder; it is copied into ``out/audit/`` (unless it is that folder already), so the report folder holds its evidence."""
    from ccmlib.engine.runfolder import read_outputs
    from ccmlib.report.quarterly import check_crosswalk, check_final, report_salt

    src = Path(audit_dir)
    if not src.is_dir():
        raise InputError(f"{src}: not a folder (expected an audit run folder: a report's audit/ or a `ccm-audit check` --out)")
    from ccmlib.report.repayment import check_path
    check_path(repayment_path)
    res = read_outputs(src)  # every check of the folder before anything is written
    check_final(res.run, final)
    out = Path(out)
    ledger = Path(ledger) if ledger else engagement_root(out) / "ledger.sqlite"
    name = practice_name or (res.run.get("report") or {}).get("practice_name") or Path(res.run.get("data_folder", src)).name
    check_crosswalk(src, report_salt(src, out, ledger), name)
    period = res.run["period"]["label"]
    with RunFolder(out, "report") as rf:
        stage = rf.stage()
        from ccmlib.engine.outputs import LOCK, STAGING_PREFIX
        ignore = shutil.ignore_patterns(LOCK, STAGING_PREFIX + "*")
        shutil.copytree(src, stage / "audit", ignore=ignore)
        params = check_parameters({"audit_dir": str((stage / "audit").resolve()), "practice_name": name,
                                   "output_dir": str(stage.resolve()), "show_identifiers": bool(show_identifiers),
                                   "ledger": str(ledger.resolve()), "prepared_by": prepared_by, "prepared_for": prepared_for,
                                   "final": bool(final), "repayment_path": repayment_path, "command": command or command_line()})
        rec = _render(rf, stage, params, ledger, period, timeout, progress)
        rf.publish(stage)
    return _finish(out, ledger, params, period, rec)


def _render(rf: RunFolder, stage: Path, params: dict, ledger: Path, period: str, timeout: int, progress: bool) -> dict:
    """Execute the report notebook on the run folder in ``stage/audit`` and write the HTML and PDF beside it; a failed
    cell's evidence goes to ``out/failed/`` and raises :class:`ReportError`."""
    nb_in = paths.notebook(NOTEBOOK)
    executed = stage / NOTEBOOK
    import tempfile

    import papermill as pm

    sockets = tempfile.mkdtemp(prefix="ccm-kernel-")  # short path: a Unix socket path has a length limit
    try:
        pm.execute_notebook(str(nb_in), str(executed), parameters=params, kernel_name=KERNEL, execution_timeout=timeout,
                            kernel_manager_class=local_kernel_manager(sockets),
                            start_timeout=120, cwd=str(nb_in.parent), progress_bar=progress and sys.stderr.isatty() and not os.environ.get("CCM_AUDIT_QUIET"),
                            log_output=False, request_save_on_cell_execute=False)  # written once when it ends (or fails), not
        # before and after every cell: the staged copy is never read meanwhile, and ~90 writes of a growing notebook cost seconds
    except pm.PapermillExecutionError as exc:
        if exc.ename == "InputError":  # bad input found by the library inside the notebook: a user's message, exit 2
            raise InputError(str(exc.evalue)) from None
        evidence = rf.stage()
        failed = evidence / "failed"
        failed.mkdir()
        os.replace(executed, failed / NOTEBOOK)
        err_nb = nbformat.read(str(failed / NOTEBOOK), as_version=4)
        _clean(err_nb)
        to_html(err_nb, failed / "error.html", include_code=True)
        rf.publish(evidence, add_only=True)
        add_run(ledger, params["practice_name"], period, "failed", str(rf.path / "failed"), [], params, None)
        raise ReportError(f"cell {exc.exec_count} failed: {exc.ename}: {exc.evalue}; the executed notebook with the error is "
                          f"{rf.path / 'failed' / NOTEBOOK} (the previous report, if any, is unchanged)") from None
    finally:
        shutil.rmtree(sockets, ignore_errors=True)  # the kernel has stopped: its socket files are gone, the folder goes too
    nb = nbformat.read(str(executed), as_version=4)
    rec = read_records(nb)
    prov = dict(rec.get("provenance", {}))
    prov.update({f"{k}_css": css_string(prov.get(v, "")) for k, v in
                 (("practice", "practice"), ("period", "period"), ("catalog", "rule_catalog_version"), ("status", "status"))})
    nb.metadata["ccm_audit"] = prov
    nb.metadata["title"] = f"CCM compliance review: {prov.get('practice', '')}, {prov.get('period', '')}"  # the PDF's title
    _clean(nb)
    html = to_html(nb, stage / "report.html")
    to_pdf(html, stage / "report.pdf")
    for name in ("report.html", "report.pdf", "workpapers.xlsx", NOTEBOOK):
        if not (stage / name).is_file():
            raise ReportError(f"the report run did not produce {name}")
    return rec


def _finish(out: Path, ledger: Path, params: dict, period: str, rec: dict) -> Report:
    add_run(ledger, params["practice_name"], period, "ok", str(out), rec.get("provenance", {}).get("inputs", []),
            {k: v for k, v in params.items() if k not in ("output_dir", "audit_dir")}, rec.get("headline"))
    return Report(out, out / NOTEBOOK, out / "report.html", out / "report.pdf", out / "workpapers.xlsx", rec.get("headline", {}),
                  rec.get("provenance", {}))
