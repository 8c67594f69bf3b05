"""`ccm-audit` command line: parse arguments, call the library, print, set the exit code.

Exit codes: 0 success, 2 bad input (message on stderr), 1 unexpected failure.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from .errors import InputError


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
@click.option("--quiet", is_flag=True, help="No progress bars or summary.")
@_friendly
def check(data_dir, out_dir, period, start, end, rules, fees, conditions, quiet):
    """Check a practice data folder against every CCM rule; write findings.csv, claim_lines.csv,
    patient_months.csv, data_quality.csv and run.json to --out."""
    from .audit import audit, write_outputs

    res = audit(data_dir, period=period, start=start, end=end, rules=rules, fees=fees, conditions=conditions, progress=not quiet)
    write_outputs(res, out_dir)
    if not quiet:
        s = res.run["summary"]
        click.echo(f"{res.run['period']['label']}: {s['patient_months']} patient-months, {s['claim_lines']} CCM claim lines "
                   f"({s['claim_lines_not_supported']} not fully supported)")
        click.echo(f"findings: {s['findings']['error']} errors, {s['findings']['warning']} warnings, {s['findings']['info']} opportunities; "
                   f"overpayment ${s['overpayment']:,.2f}; missed ${s['missed_amount']:,.2f}")
        click.echo(f"data quality: {s['data_quality_rows']} rows; written to {out_dir}")


@main.command()
@click.option("--patients", default=200, show_default=True, type=click.IntRange(1), help="Number of patients.")
@click.option("--months", default="2026-01..2026-03", show_default=True, help="Month range FIRST..LAST.")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed: same seed, same bytes.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder to write the practice to.")
@click.option("--rate", "rates", multiple=True, metavar="[RULE=]P",
              help="Pitfall rate: P for every pitfall (default 0.02), or RULE=P for one (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@_friendly
def synth(patients, months, seed, out_dir, rates, fmt):
    """Write a synthetic practice in the data-contract layout, with injected pitfalls and truth.csv."""
    from .synth import generate, parse_rates

    res = generate(patients=patients, months=months, seed=seed, rates=parse_rates(rates), out=out_dir, fmt=fmt, progress=True)
    click.echo(f"wrote {out_dir}: " + ", ".join(f"{k} {v}" for k, v in res.items()))


@main.command("rules")
@click.option("--csv", "as_csv", is_flag=True, help="Print the catalog as CSV.")
def rules_cmd(as_csv):
    """List every rule: ID, severity, CERT category, title and citation."""
    from .rules.registry import catalog

    cat = catalog()
    if as_csv:
        click.echo(cat.to_csv(index=False), nl=False)
        return
    for r in cat.itertuples():
        click.echo(f"{r.id:8} {r.severity:8} {r.cert_category:27} {r.title}\n{'':8} {r.citation}")


@main.command()
@click.option("--out", "out_dir", default="templates", show_default=True, type=click.Path(path_type=Path))
@_friendly
def templates(out_dir):
    """Write blank intake templates (one Excel workbook, one CSV header per table) from the schemas."""
    from .templates import write_templates

    for p in write_templates(out_dir):
        click.echo(p)


if __name__ == "__main__":  # pragma: no cover
    main()
