"""`ccm-audit` command line: parse arguments, call the library, print, set the exit code.

Exit codes: 0 success, 2 bad input (message on stderr), 1 unexpected failure.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from ccmlib.errors import InputError


def _friendly(func):
    """Turn InputError into a one-line message on stderr and exit code 2."""
    @functools.wraps(func)
    def wrapper(*a, **kw):
        try:
            return func(*a, **kw)
        except InputError as exc:
            click.echo(f"ccm-audit: error: {exc}", err=True)
            sys.exit(2)
    return wrapper


QUIET_ENV = "CCM_AUDIT_QUIET"
ENCOUNTERS_FROM_HELP = ("The day the visit history (encounters and visit claims) begins; IV-01 is not assessed where the year "
                        "before CCM commencement begins earlier and no visit is found. Default: mapping.yml's encounters_from, "
                        "else the earliest encounter or visit claim.")


def _quiet(func):
    """Add ``--quiet``: no progress bars and nothing on stdout (errors still go to stderr, the exit code is unchanged)."""
    @functools.wraps(func)
    def wrapper(*a, quiet=False, **kw):
        if not quiet:
            return func(*a, **kw)
        import contextlib
        import io

        os.environ[QUIET_ENV] = "1"  # progress bars read it (paths.progress_off)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return func(*a, **kw)
        finally:
            os.environ.pop(QUIET_ENV, None)
    return click.option("--quiet", is_flag=True, help="No progress bars and no summary (errors still go to stderr).")(wrapper)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ccm-audit")
def main():
    """Audit workbench for Medicare Chronic Care Management (CPT 99490 family) billing.

    \b
    Start with the bundled demo practice:
      ccm-audit check data/demo --out reports/demo --period 2026Q3
    """


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder to write (created if missing).")
@click.option("--period", help="Quarter (2026Q1), month (2026-01) or year (2026). Default: every month in the data.")
@click.option("--from", "start", metavar="YYYY-MM", help="First month (with --to).")
@click.option("--to", "end", metavar="YYYY-MM", help="Last month (with --from).")
@click.option("--rules", help="Comma-separated rule IDs to run (default: all). See `ccm-audit rules`.")
@click.option("--fees", type=click.Path(path_type=Path), help="Locality fee schedule CSV replacing the bundled national amounts.")
@click.option("--conditions", type=click.Path(path_type=Path), help="CSV (prefix,category,category_name) extending the chronic-condition map.")
@click.option("--qp-npis", metavar="NPI,...", help="Billing NPIs that are qualifying APM participants: their lines without paid_amount "
              "are priced at the fee table's QP rate (CY2026 on).")
@click.option("--encounters-from", "encounters_from", metavar="YYYY-MM-DD", help=ENCOUNTERS_FROM_HELP)
@click.option("--overrides", type=click.Path(path_type=Path),
              help="Auditor decision log to apply (default: overrides.csv in --out when it exists).")
@click.option("--sample", "sample_size", type=int, help="Draw a RAT-STATS sample of this many units from the frame.")
@click.option("--seed", help="Sample seed as typed (default: time of day, printed and recorded).")
@click.option("--spares", default=0, show_default=True, type=int, help="Spare units to draw after the sample.")
@click.option("--strata", help="Stratify the frame: practitioner, or dollars:CUT,CUT (paid-amount bands).")
@click.option("--unit", type=click.Choice(["claim_lines", "patient_months"]), default="claim_lines", show_default=True,
              help="Sampling unit of the frame.")
@click.option("--profile", metavar="NAME_OR_FILE", help="Catalog variant: medicare-ffs (default), strict-mac, medicare-advantage, "
              "or a profile YAML file (see README, Profiles).")
@click.option("--no-memory-check", "no_memory_check", is_flag=True,
              help="No memory estimate: check at once (or in --shards N) even a practice whose time entries look too many "
              "for the memory limit (by default sharded to fit it, or refused before loading, with the estimate).")
@click.option("--shards", type=click.IntRange(min=1), metavar="N",
              help="Check the patients in N shards, one after another, holding about 1/N of the practice's facts in memory "
              "(for a practice too large to check at once; the outputs are those of one check, an auditor decision log "
              "applied as in one check).")
@click.option("--memory-limit", "memory_limit", metavar="SIZE",
              help="Memory the check may use: a size (2GB, 1.5GiB, 800MB) or a share of the memory available (60%); "
              "default 90% of the memory available. A practice whose check at once would need more is checked in as "
              "many shards as keep it within the limit (as with --shards N; the outputs are those of one check), one "
              "that needs more even in shards is refused before loading, with the estimate.")
@click.option("--shard-jobs", "shard_jobs", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="When the check is in shards (--shards, or to keep within the memory limit): K shards at once, each in "
              "a process of its own (faster on K cores, about K times a shard's memory; the limit counts it).")
@click.option("--quiet", is_flag=True, help="No progress bars or summary.")
@_friendly
def check(data_dir, out_dir, period, start, end, rules, fees, conditions, qp_npis, encounters_from, overrides, sample_size, seed, spares, strata, unit,
          profile, no_memory_check, shards, memory_limit, shard_jobs, quiet):
    """Check a practice data folder against every CCM rule; write findings.csv, claim_lines.csv,
    patient_months.csv, data_quality.csv and run.json to --out."""
    from ccmlib.engine.pipeline import audit, write_outputs
    from ccmlib.engine.outputs import RunFolder
    from ccmlib.engine.decisions import FILE_NAME

    if shard_jobs > 1 and not shards and no_memory_check:
        raise InputError("--shard-jobs goes with --shards N, or with the memory limit (which may check in shards)")
    if (seed is not None or strata is not None) and sample_size is None:
        raise InputError("--seed and --strata go with --sample N")
    if overrides is not None and not overrides.is_file():
        raise InputError(f"{overrides}: overrides file not found")
    if no_memory_check and memory_limit is not None:
        raise InputError("--memory-limit and --no-memory-check: give one or the other")
    if not no_memory_check:  # a practice too large for the limit is sharded or refused now, not killed later
        from ccmlib.engine.capacity import choose_shards
        n, why = choose_shards(data_dir, memory_limit, shards, shard_jobs)
        if why is not None:
            shards = n
            if not quiet:
                click.echo(f"ccm-audit: {why}", err=True)
    with RunFolder(out_dir, "check") as rf:  # checked and locked before any expensive work
        if overrides is None and (out_dir / FILE_NAME).is_file():
            overrides = out_dir / FILE_NAME
        if shards:
            from ccmlib.engine.shards import audit_sharded
            res = audit_sharded(data_dir, shards, rf.stage(), period=period, start=start, end=end, rules=rules, fees=fees,
                                conditions=conditions, overrides=overrides, progress=not quiet, qp_npis=_npis(qp_npis),
                                profile=profile, encounters_from=encounters_from, jobs=shard_jobs)
        else:
            res = audit(data_dir, period=period, start=start, end=end, rules=rules, fees=fees, conditions=conditions,
                        overrides=overrides, progress=not quiet, qp_npis=_npis(qp_npis), profile=profile,
                        encounters_from=encounters_from, keep_facts=False)  # the run folder is all this command makes
        if sample_size is not None:
            from ccmlib.engine.pipeline import attach_sample
            attach_sample(res, sample_size, seed, spares, strata, unit)
        write_outputs(res, rf)
    from ccmlib.engine.pipeline import empty_period_message
    empty = empty_period_message(res.run)
    if empty:
        click.echo(f"ccm-audit: warning: {empty}; empty files written to {out_dir}", err=True)
    if not quiet:
        s = res.run["summary"]
        click.echo(f"{res.run['period']['label']}: {s['patient_months']} patient-months, {s['claim_lines']} CCM claim lines "
                   f"({s['claim_lines_not_supported']} not fully supported)")
        click.echo(f"findings: {s['findings']['error']} errors, {s['findings']['warning']} warnings, {s['findings']['info']} opportunities; "
                   f"overpayment ${s['overpayment']:,.2f}; missed ${s['missed_amount']:,.2f}")
        if res.sample is not None:
            smp = res.run["sample"]
            click.echo(f"sample: {smp['quantity']} of {smp['frame_size']} {unit.replace('_', ' ')}, seed {smp['seed']} "
                       f"(re-draw with the same seed and frame.csv); sample.csv and frame.csv written")
            dem = (res.run.get("appraisal") or {}).get("demand")
            if dem:
                click.echo(f"extrapolated overpayment: point ${dem['point_estimate']:,.0f}; 90 % two-sided lower ${dem['lower_90_two_sided']:,.0f}; "
                           f"80 % two-sided lower ${dem['lower_80_two_sided']:,.0f}")
            rv = res.run["review"]
            click.echo(f"chart review: {rv['decided']} of {rv['sampled_units']} sampled units decided, {rv['undecided']} undecided"
                       + (" (review with `ccm-audit review " + str(out_dir) + "`; a final report needs every one decided)" if rv["undecided"] else ""))
        if "overrides" in res.run:
            o = res.run["overrides"]
            click.echo(f"auditor decisions from {o['file']}: {o['applied']} applied ({o['confirmed']} confirmed, {o['accepted']} accepted, "
                       f"{o['overturned']} overturned, {o['added']} added), "
                       f"{o['no_longer_raised']} for findings no longer raised; trail in overrides_applied.csv")
        not_run = [r for r in res.run["rules"] if r["status"] == "not_run"]
        if not_run:
            click.echo(f"{len(not_run)} rule(s) did not run: " + "; ".join(f"{r['rule_id']} ({r['reason']})" for r in not_run))
        click.echo(f"data quality: {s['data_quality_rows']} rows; written to {out_dir}")


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--month", required=True, metavar="YYYY-MM", help="The month to bill.")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="Count only documentation dated on or before this day (default: today "
              "for the current month, the month's last day for a past month).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for prebill.csv, worklist.html/pdf, run.json.")
@click.option("--fees", type=click.Path(path_type=Path), help="Locality fee schedule CSV replacing the bundled national amounts.")
@click.option("--conditions", type=click.Path(path_type=Path), help="CSV (prefix,category,category_name) extending the chronic-condition map.")
@click.option("--qp-npis", metavar="NPI,...", help="Billing NPIs that are qualifying APM participants.")
@click.option("--practice-name", help="Name on the worklist (default: the data folder's name).")
@click.option("--show-identifiers", is_flag=True, help="Patient ids on the worklist instead of pseudonymous keys (PHI: handle accordingly).")
@click.option("--profile", metavar="NAME_OR_FILE", help="Catalog variant: medicare-ffs (default), strict-mac, medicare-advantage, "
              "or a profile YAML file (see README, Profiles).")
@_quiet
@_friendly
def prebill(data_dir, month, as_of, out_dir, fees, conditions, qp_npis, practice_name, show_identifiers, profile):
    """Monthly pre-bill review: per patient, the codes the documentation supports now, the minutes still needed, and
    what blocks a claim (the same rules as `check`); writes prebill.csv and a one-page worklist (HTML and PDF)."""
    from ccmlib.engine.outputs import RunFolder
    from ccmlib.engine.prebill import prebill as run_prebill
    from ccmlib.report.worklist import write_prebill

    if not Path(data_dir).is_dir():
        raise InputError(f"{data_dir}: not a folder (expected a practice data folder)")
    with RunFolder(out_dir, "prebill") as rf:  # checked and locked before any work
        pb = run_prebill(data_dir, month, as_of=as_of, fees=fees, conditions=conditions, qp_npis=_npis(qp_npis), profile=profile)
        write_prebill(pb, rf, show_identifiers=show_identifiers, practice_name=practice_name or Path(data_dir).resolve().name)
    click.echo(f"{pb.month}, data as of {pb.as_of}:")
    for r in pb.by_status().itertuples():
        click.echo(f"  {r.status:<21} {r.patients:>5} patient(s)  ${r.dollars_at_stake:,.2f}")
    click.echo(f"written to {out_dir}: prebill.csv, worklist.html, worklist.pdf, run.json")


def _serve(cmd: list[str]) -> int:
    """Run a server (Voila) in the foreground; Ctrl-C or a TERM signal stops it and its kernels, never leaving them
    behind."""
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, start_new_session=True)  # its own process group: the kernels it starts go with it

    def stop(*_):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    old = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop()
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, old)
        if proc.poll() is None:
            stop()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _echo_report(r) -> None:
    """What `report` and `render` print: the headline and the four files."""
    h = r.headline
    click.echo(f"{h['period']}: {h['claim_lines_reviewed']} claim lines, {h['claim_lines_in_error']} in error; overpayment "
               f"${h['overpayment']:,.2f}; missed ${h['missed_revenue']:,.2f}")
    for p in (r.notebook, r.html, r.pdf, r.workpapers):
        click.echo(p)


@main.command()
@click.argument("audit_dir", type=click.Path(path_type=Path))
@click.option("--port", default=8866, show_default=True, type=click.IntRange(1024, 65535), help="Port on 127.0.0.1.")
@click.option("--reviewer", default="", help="Your name, filled in on each decision.")
@_friendly
def review(audit_dir, port, reviewer):
    """Chart review of an audit folder (a `check` run folder, or a report's audit/ folder) in the browser: walk the
    sampled and flagged patient-months, accept or overturn each finding with a reason and evidence. Decisions are
    appended to AUDIT_DIR/overrides.csv, which `check --out AUDIT_DIR` and `report` apply."""
    import shutil
    import tempfile

    from ccmlib.paths import with_parameters
    from ccmlib.workbench.review import audit_folder, audit_run

    audit_dir = audit_folder(audit_dir)  # a report folder means its audit/ folder
    audit_run(audit_dir)  # a clear message now, not a traceback in the browser
    tmp = Path(tempfile.mkdtemp(prefix="ccm-review-"))  # the app's notebook holds only the folder's path
    try:
        nb = with_parameters("chart_review.ipynb", {"audit_dir": str(Path(audit_dir).resolve()), "reviewer": reviewer},
                             tmp / "chart_review.ipynb")
        click.echo(f"chart review of {audit_dir}: open http://127.0.0.1:{port}/ in a browser on this machine "
                   f"(decisions go to {Path(audit_dir) / 'overrides.csv'}; Ctrl-C stops the app)")
        cmd = [sys.executable, "-m", "voila", str(nb), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
               "--Voila.port_retries=0"]
        _serve(cmd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for handout.html/.pdf (the questions) and answer_key.html/.pdf.")
@click.option("--rules", help="Comma-separated rule IDs (default: every scenario).")
@_quiet
@_friendly
def handout(out_dir, rules):
    """A printable training handout for a class: every pitfall scenario as a numbered case with its chart and the
    question (handout.html/.pdf), and a separate answer key with the engine's verdict, why and the fix."""
    from ccmlib.engine.outputs import RunFolder
    from ccmlib.workbench.training import SCENARIOS, handout as make

    ids = [r.strip() for r in rules.split(",")] if rules else list(SCENARIOS)
    unknown = [r for r in ids if r not in SCENARIOS]
    if unknown:
        raise InputError(f"--rules: no training scenario for {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    with RunFolder(out_dir, "handout") as rf:
        stage = rf.stage()
        make(stage, ids, progress=True)
        rf.publish(stage)
    click.echo(f"written to {out_dir}: handout.html, handout.pdf (questions), answer_key.html, answer_key.pdf")


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--write", is_flag=True, help="Save the draft as DATA_DIR/mapping.yml (never over one that exists).")
@_quiet
@_friendly
def inspect(data_dir, write):
    """Look at a practice's export before auditing it: per table the contract columns found and missing, source
    columns nothing maps, sample values, values the contract will not accept, and a draft mapping.yml with
    best-guess matches to confirm (printed; --write saves it)."""
    from ccmlib.intake.inspect import inspect_folder, write_draft

    ins = inspect_folder(data_dir)
    click.echo(ins.text())
    click.echo("\ndraft mapping.yml:\n" + ins.draft_yaml())
    if write:
        click.echo(f"written: {write_draft(ins)}; now run `ccm-audit check {data_dir} --out OUT`")


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Data folder to write (created if missing).")
@click.option("--quiet", is_flag=True, help="No progress bars or summary.")
@_friendly
def ingest(sources, out_dir, quiet):
    """Build a practice data folder from the files practices already have: X12 837P claims (005010X222A1), X12 835
    remittance advice (005010X221A1), FHIR R4 JSON Bundles/resources and bulk-export NDJSON, plus any of the
    practice's own tables (time_entries.csv, staff.csv, ...), which are copied in. SOURCES are files or folders.

    \b
    Writes the contract's tables, data_quality.csv (every record not mapped, with file, position and reason) and
    ingest.json (source hashes; records read = mapped + rejected per file). Then: ccm-audit check OUT --out RUN
    Example: ccm-audit ingest claims.837 remits/ ehr_export/ time_entries.csv --out data/clinic"""
    from ccmlib.engine.outputs import RunFolder
    from ccmlib.intake.ingest import ingest as run_ingest
    from ccmlib.intake.ingest import write_ingested

    with RunFolder(out_dir, "ingest") as rf:  # checked and locked before any work
        ing = run_ingest(list(sources), progress=not quiet, exclude=out_dir)
        write_ingested(ing, rf)
    if quiet:
        return
    for s in ing.sources:
        usd = lambda x: f"{'-' if x < 0 else ''}${abs(x):,.2f}"  # noqa: E731
        paid = f", paid {usd(s['paid_read'])} read = {usd(s['paid_mapped'])} mapped + {usd(s['paid_rejected'])} rejected" \
            if s["paid_read"] is not None else ""
        click.echo(f"{s['file']} ({s['format']}): {s['records_read']} records = {s['records_mapped']} mapped + "
                   f"{s['records_rejected']} rejected{paid}" + ("" if s["reconciles"] else "  DOES NOT RECONCILE"))
    for p in ing.copied:
        click.echo(f"{p}: copied")
    click.echo("tables: " + ", ".join(f"{n} {len(df)}" for n, df in ing.tables.items()))
    click.echo(f"written to {out_dir} (data_quality.csv: {len(ing.quality)} row(s)); next: ccm-audit check {out_dir} --out RUN_DIR")


@main.command()
@click.option("--patients", default=200, show_default=True, type=click.IntRange(1), help="Number of patients.")
@click.option("--months", default="2026-01..2026-03", show_default=True, help="Month range FIRST..LAST.")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed: same seed, same bytes.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder to write the practice to.")
@click.option("--rate", "rates", multiple=True, metavar="[RULE=]P",
              help="Pitfall rate: P for every pitfall (default 0.02; ELIG-03 and DOC-01 0.01), or RULE=P for one (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--entries", default="2-4", show_default=True, metavar="FEWEST-MOST", help="Time entries per patient-month.")
@click.option("--no-encounters", is_flag=True, help="Write an empty encounters table and no visit claims (no visit evidence: IV-01 then applies to every billed month).")
@click.option("--chunk-patients", type=int, metavar="N",
              help="Make and write the practice N patients at a time, so memory is bounded by the chunk (about 3 GB for 100,000 "
                   "patients over 3 months with 6-10 entries): for practices too large to build at once. The same seed and N "
                   "give the same bytes; a chunk covering every patient gives the practice made without this option.")
@_quiet
@_friendly
def synth(patients, months, seed, out_dir, rates, fmt, entries, no_encounters, chunk_patients):
    """Write a synthetic practice in the data-contract layout, with injected pitfalls and truth.csv."""
    from ccmlib.synth.generator import generate, parse_rates

    try:
        lo, hi = (int(x) for x in entries.split("-"))
    except ValueError:
        raise InputError(f"--entries {entries!r}: expected FEWEST-MOST like 2-4") from None
    res = generate(patients=patients, months=months, seed=seed, rates=parse_rates(rates), out=out_dir, fmt=fmt, progress=True,
                   entries=(lo, hi), encounters=not no_encounters, chunk_patients=chunk_patients)
    click.echo(f"wrote {out_dir}: " + ", ".join(f"{k} {v}" for k, v in res.items()))


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--period", required=True, help="Quarter (2026Q3), month or year.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Report folder to write (replaced when the run succeeds).")
@click.option("--sample", "sample_size", type=int, help="Review a RAT-STATS sample of N claim lines instead of the full population.")
@click.option("--seed", help="Sample seed as typed (default: time of day, reported).")
@click.option("--strata", help="Stratify the sample: practitioner, or dollars:CUT,CUT.")
@click.option("--practice-name", help="Name shown on the report (default: the data folder's name).")
@click.option("--show-identifiers", is_flag=True, help="Show patient ids instead of pseudonymous keys (PHI: handle accordingly).")
@click.option("--ledger", type=click.Path(path_type=Path), help="SQLite run ledger (default: ledger.sqlite beside the report folder).")
@click.option("--overrides", type=click.Path(path_type=Path),
              help="Auditor decision log to apply (default: OUT/audit/overrides.csv of the previous run when it exists).")
@click.option("--fees", type=click.Path(path_type=Path), help="Locality fee schedule CSV replacing the bundled national amounts.")
@click.option("--prepared-by", help="Who prepared the review (cover and sign-off).")
@click.option("--prepared-for", help="For whom (default: the practice name).")
@click.option("--final", is_flag=True, help="Mark the report FINAL (default: every page says DRAFT). Refused (exit 2) while any "
              "sampled unit is undecided in the chart review.")
@click.option("--path", "repayment_path", type=click.Choice(["identified", "self-disclosure", "contractor", "cia"]),
              help="The repayment path page 1 states: identified lines (no sample), OIG self-disclosure (point estimate, 100+ units), "
                   "a Medicare contractor's demand (two-sided 80 % lower limit, PIM ch. 8) or a CIA claims review (two-sided 90 % "
                   "lower limit). Default: identified without a sample, self-disclosure with one.")
@click.option("--timeout", default=900, show_default=True, type=int, help="Seconds a notebook cell may run.")
@click.option("--profile", metavar="NAME_OR_FILE", help="Catalog variant: medicare-ffs (default), strict-mac, medicare-advantage, "
              "or a profile YAML file (see README, Profiles).")
@click.option("--encounters-from", "encounters_from", metavar="YYYY-MM-DD", help=ENCOUNTERS_FROM_HELP)
@_quiet
@_friendly
def report(data_dir, period, out_dir, sample_size, seed, strata, practice_name, show_identifiers, ledger, overrides, fees,
           prepared_by, prepared_for, final, repayment_path, timeout, profile, encounters_from):
    """Render the quarterly compliance report: executed notebook, report.html, report.pdf and workpapers.xlsx."""
    from ccmlib.report.render import ReportError, render_report

    if seed is not None and sample_size is None:
        raise InputError("--seed goes with --sample N")
    try:
        r = render_report(data_dir, period, out_dir, sample_size=sample_size, seed=seed, strata=strata, practice_name=practice_name,
                          show_identifiers=show_identifiers, ledger=ledger, overrides=overrides, timeout=timeout, progress=True,
                          prepared_by=prepared_by, prepared_for=prepared_for, final=final, fees=fees, repayment_path=repayment_path,
                          profile=profile, encounters_from=encounters_from)
    except ReportError as exc:
        click.echo(f"ccm-audit: report failed: {exc}", err=True)
        sys.exit(1)
    _echo_report(r)


@main.command()
@click.argument("audit_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Report folder to write (a new folder, or the report folder AUDIT_DIR belongs to; replaced when the run succeeds).")
@click.option("--practice-name", help="Name shown on the report (default: the name the audit was run under).")
@click.option("--show-identifiers", is_flag=True, help="Show patient ids instead of pseudonymous keys (PHI: handle accordingly).")
@click.option("--ledger", type=click.Path(path_type=Path), help="SQLite run ledger (default: ledger.sqlite beside the report folder).")
@click.option("--prepared-by", help="Who prepared the review (cover and sign-off).")
@click.option("--prepared-for", help="For whom (default: the practice name).")
@click.option("--final", is_flag=True, help="Mark the report FINAL. Refused (exit 2) while any sampled unit of the run is undecided.")
@click.option("--path", "repayment_path", type=click.Choice(["identified", "self-disclosure", "contractor", "cia"]),
              help="The repayment path page 1 states (see `ccm-audit report --help`).")
@click.option("--timeout", default=900, show_default=True, type=int, help="Seconds a notebook cell may run.")
@_quiet
@_friendly
def render(audit_dir, out_dir, practice_name, show_identifiers, ledger, prepared_by, prepared_for, final, repayment_path, timeout):
    """Render the quarterly report of an audit run folder without re-auditing: AUDIT_DIR is a report's audit/ folder or a
    `ccm-audit check` --out folder. The same run gives the same figures and tables; only the presentation options
    (names, --final, --path, identifiers) may change."""
    from ccmlib.report.render import ReportError, render_run

    try:
        r = render_run(audit_dir, out_dir, practice_name=practice_name, show_identifiers=show_identifiers, ledger=ledger,
                       prepared_by=prepared_by, prepared_for=prepared_for, final=final, repayment_path=repayment_path,
                       timeout=timeout, progress=True)
    except ReportError as exc:
        click.echo(f"ccm-audit: render failed: {exc}", err=True)
        sys.exit(1)
    _echo_report(r)


@main.command()
@click.argument("clients_dir", type=click.Path(path_type=Path))
@click.option("--period", required=True, help="Quarter (2026Q3), month or year.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for one report per practice and portfolio.csv.")
@click.option("--check-only", is_flag=True, help="Write audit run folders only, no rendered reports.")
@click.option("--strict", is_flag=True, help="Exit 1 when any practice failed (default: 0 when at least one succeeded).")
@click.option("--fees", type=click.Path(path_type=Path), help="Locality fee schedule CSV for every practice.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1), help="Practices audited at once, in separate processes.")
@click.option("--scheduler", metavar="ADDRESS", help="Run the practices on a Dask distributed cluster (tcp://HOST:8786); its workers "
              "must see the same files.")
@click.option("--profile", metavar="NAME_OR_FILE", help="Catalog variant for every practice: medicare-ffs (default), strict-mac, medicare-advantage, "
              "or a profile YAML file (see README, Profiles).")
@_quiet
@_friendly
def batch(clients_dir, period, out_dir, check_only, strict, fees, jobs, scheduler, profile):
    """Audit every practice folder in CLIENTS_DIR (each may have its own mapping.yml), continuing past failures."""
    from ccmlib.engine.periods import parse_period
    from ccmlib.workbench.portfolio import run_batch

    parse_period(period)
    if fees is not None and not Path(fees).is_file():
        raise InputError(f"{fees}: fee schedule file not found")
    df = run_batch(clients_dir, period, out_dir, reports=not check_only, progress=True, fees=fees, jobs=jobs, scheduler=scheduler,
                   profile=profile)
    for r in df.itertuples():
        if r.status == "ok":
            click.echo(f"ok      {r.practice}: {r.claim_lines:.0f} claim lines, {r.error_rate_count:.1%} in error, "
                       f"overpayment ${r.overpayment:,.2f}, missed ${r.missed_revenue:,.2f} -> {r.folder}")
        else:
            click.echo(f"FAILED  {r.practice}: {r.error}", err=True)
    failed = int((df["status"] != "ok").sum())
    click.echo(f"{len(df) - failed} of {len(df)} practices done; portfolio.csv" + ("" if check_only else ", portfolio.html and .pdf")
               + f" in {out_dir}")
    if failed and (strict or failed == len(df)):
        sys.exit(1)


@main.command("rules")
@click.option("--csv", "as_csv", is_flag=True, help="Print the catalog as CSV.")
@click.option("--profile", metavar="NAME_OR_FILE", help="Show the severities this profile uses (strict-mac, medicare-advantage, a file).")
@click.option("--show", "show_rule", metavar="RULE", help="Print one rule's whole declaration and its query (the code that flags a line).")
@_friendly
def rules_cmd(as_csv, profile, show_rule):
    """List every rule: ID, severity, CERT category, title and citation (--show RULE: one rule in full, with its query)."""
    from ccmlib.engine import profiles

    if show_rule:
        from ccmlib.engine.rules.describe import describe
        from ccmlib.workbench.training import SCENARIOS
        click.echo(describe(show_rule, profile, SCENARIOS), nl=False)
        return

    cat = profiles.catalog(profile)
    if profile is None:
        cat = cat.drop(columns=["catalog_severity", "profile_status"])
    else:
        cat["severity"] = cat["severity"].where(cat["profile_status"] != "off", "off")
    if as_csv:
        click.echo(cat.to_csv(index=False), nl=False)
        return
    from ccmlib.engine.rules.registry import RULE_CATALOG_VERSION

    click.echo(f"rule catalog version {RULE_CATALOG_VERSION}: {len(cat)} rules")
    if profile is not None:
        p = profiles.load_profile(profile)
        click.echo(f"{profiles.sentence(p.to_json())} Severities as this profile uses them (catalog's in brackets where it differs).")
    for r in cat.itertuples():
        was = f" [catalog: {r.catalog_severity}]" if profile is not None and r.catalog_severity != r.severity else ""
        click.echo(f"{r.id:8} {r.severity:8} {r.cert_category:27} {r.title}{was}\n{'':8} {r.citation}")


@main.command()
@click.option("--out", "out_dir", default="templates", show_default=True, type=click.Path(path_type=Path))
@_quiet
@_friendly
def templates(out_dir):
    """Write blank intake templates (one Excel workbook, one CSV header per table) from the schemas."""
    from ccmlib.intake.templates import write_templates

    for p in write_templates(out_dir):
        click.echo(p)


def _npis(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    npis = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in npis if not (n.isdigit() and len(n) == 10)]
    if bad:
        raise InputError(f"--qp-npis: {', '.join(bad)} is not a 10-digit NPI")
    return npis


def _emit(obj: dict, as_json: bool, text) -> None:
    import json

    if as_json:
        click.echo(json.dumps(obj))
    else:
        click.echo(text(obj))


@main.command()
@click.option("--seed", help="Seed as typed (e.g. 48863.78). Default: the time of day in seconds, printed.")
@click.option("--quantity", required=True, type=int, help="Quantity in sequential order.")
@click.option("--spares", default=0, show_default=True, type=int, help="Spares (drawn after the sequential numbers).")
@click.option("--low", required=True, type=int, help="Frame low number (may be negative).")
@click.option("--high", required=True, type=int, help="Frame high number.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly
def sample(seed, quantity, spares, low, high, as_json):
    """Single-stage random numbers without replacement, as RAT-STATS draws them."""
    from ccmlib.stats.text import random_numbers_text
    from ccmlib.stats.ratstats import random_numbers

    _emit(random_numbers(seed, quantity, spares, low, high).to_json(), as_json, random_numbers_text)


@main.group()
def appraise():
    """Appraise a sample: variable (dollar) or attribute (error-rate) appraisal."""


@appraise.command("variable")
@click.argument("values", type=click.Path(path_type=Path))
@click.option("--universe", required=True, help="Universe size N, or per stratum: 1:5200,2:3500.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly
def appraise_variable_cmd(values, universe, as_json):
    """Variable appraisal of VALUES.csv (columns examined, audited and/or difference; optional stratum)."""
    from ccmlib.stats.text import variable_text
    from ccmlib.stats.ratstats import appraise_variable, parse_universe

    _emit(appraise_variable(_read_values(values), parse_universe(universe)), as_json, variable_text)


@appraise.command("attribute")
@click.option("--universe", required=True, type=int, help="Universe size N.")
@click.option("--sample", "sample_size", required=True, type=int, help="Sample size n.")
@click.option("--hits", required=True, type=int, help="Sample items with the attribute (errors).")
@click.option("--one-sided", is_flag=True, help="One-sided limits.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly
def appraise_attribute_cmd(universe, sample_size, hits, one_sided, as_json):
    """Attribute appraisal with exact hypergeometric limits."""
    from ccmlib.stats.text import attribute_text
    from ccmlib.stats.ratstats import appraise_attribute

    _emit(appraise_attribute(universe, sample_size, hits, one_sided), as_json, attribute_text)


@main.group("sample-size")
def sample_size():
    """Sample-size determination."""


@sample_size.command("variable")
@click.option("--probe", type=click.Path(path_type=Path), help="Probe sample CSV (a difference, or examined and audited, column).")
@click.option("--mean", type=float, help="Mean of the probe (instead of --probe).")
@click.option("--sd", type=float, help="Standard deviation of the probe (instead of --probe).")
@click.option("--universe", required=True, type=int, help="Universe size N.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly
def sample_size_variable(probe, mean, sd, universe, as_json):
    """Sample sizes for 1-25 % precision at 80/90/95/99 % confidence."""
    from ccmlib.stats.text import sizes_text
    from ccmlib.stats.ratstats import _columns, sample_sizes

    if probe is not None:
        if mean is not None or sd is not None:
            raise InputError("give --probe or --mean and --sd, not both")
        cols = _columns(_read_values(probe))
        vals = cols["difference"] if "difference" in cols else cols.iloc[:, 0]
        mean, sd = float(vals.mean()), float(vals.std(ddof=1))
    elif mean is None or sd is None:
        raise InputError("give --probe PROBE.csv, or both --mean and --sd")
    _emit(sample_sizes(mean, sd, universe), as_json, sizes_text)


def _read_values(path: Path):
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot be read as a UTF-8 CSV ({exc})") from None
    if df.empty:
        raise InputError(f"{path}: no data rows")
    return df


if __name__ == "__main__":  # pragma: no cover
    main()
