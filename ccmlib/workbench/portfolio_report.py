"""The consultant's portfolio report (HTML and PDF): the practices of a batch side by side for the period, and from
the run ledger every quarter each practice was reported on. Figures come from each practice's run.json summary (via
portfolio.csv) and the ledger's recorded headlines, never recomputed."""
from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path

import pandas as pd

from ccmlib.report.ledger import runs
from ccmlib.report.show import table_html

CSS = """@page { size: Letter landscape; margin: 14mm; @bottom-right { content: "Page " counter(page) " of " counter(pages);
font-size: 7pt; color: #555; } @bottom-left { content: "ccm-audit portfolio: CONFIDENTIAL"; font-size: 7pt; color: #555; } }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 8.5pt; color: #111; } h1 { font-size: 15pt; margin: 0 0 4px; }
h2 { font-size: 11.5pt; margin: 12px 0 4px; border-bottom: 1px solid #999; } p { margin: 3px 0 6px; }
table.ccm-table { border-collapse: collapse; width: 100%; font-size: 7.5pt; margin: 4px 0 8px; break-before: avoid; }
table.ccm-table th, table.ccm-table td { border: 1px solid #ccc; padding: 2px 4px; text-align: left; vertical-align: top; }
table.ccm-table th { background: #eee; } tr { break-inside: avoid; } img { max-width: 100%; }"""


def quarters(ledger: Path, practices: list[str]) -> pd.DataFrame:
    """Each practice's last successful report per quarter recorded in the ledger (headline figures as recorded)."""
    rows = []
    hist = runs(ledger) if Path(ledger).exists() else pd.DataFrame()
    if len(hist):
        ok = hist[(hist["status"] == "ok") & hist["practice"].isin(practices) & hist["headline"].notna()]
        for r in ok.itertuples():
            h = json.loads(r.headline)
            rows.append({"practice": r.practice, "period": r.period, "claim_lines_reviewed": h.get("claim_lines_reviewed"),
                         "error_rate_count": h.get("error_rate_count"), "overpayment": h.get("overpayment"),
                         "error_rate_dollars": h.get("error_rate_dollars"), "missed_revenue": h.get("missed_revenue"),
                         "run_at": r.run_at})
    q = pd.DataFrame(rows, columns=["practice", "period", "claim_lines_reviewed", "error_rate_count", "overpayment",
                                    "error_rate_dollars", "missed_revenue", "run_at"])
    return q.drop_duplicates(["practice", "period"], keep="last").sort_values(["practice", "period"]).reset_index(drop=True)


def _figure_png(ok: pd.DataFrame) -> str:
    import matplotlib
    matplotlib.use("Agg")
    from ccmlib.workbench.portfolio import comparison_figure
    fig = comparison_figure(ok)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def portfolio_html(pf: pd.DataFrame, ledger: Path, period: str) -> str:
    ok = pf[pf["status"] == "ok"]
    failed = pf[pf["status"] != "ok"]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'/><title>CCM portfolio, {escape(period)}</title>"
             f"<style>{CSS}</style></head><body><h1>Chronic Care Management portfolio: {escape(period)}</h1>",
             f"<p>{len(ok)} of {len(pf)} practices audited against the same rule catalog. Rates are comparable across practices "
             f"of different sizes: errors per 100 billed patient-months, and overpayment per billed claim line.</p>",
             "<h2>Practices side by side</h2>",
             table_html(ok, columns=["practice", "period", "claim_lines", "claim_lines_in_error", "error_rate_count",
                                     "errors_per_100_billed_pm", "paid_amount", "overpayment", "error_rate_dollars",
                                     "overpayment_per_billed_line", "missed_revenue", "top_pitfalls"],
                        money=["paid_amount", "overpayment", "overpayment_per_billed_line", "missed_revenue"],
                        percent=["error_rate_count", "error_rate_dollars"], wide_last=True)]
    if len(ok):
        parts.append(f"<img alt='error rate, dollars at risk and missed revenue by practice' src='data:image/png;base64,{_figure_png(ok)}'/>")
    if len(failed):
        parts += ["<h2>Practices that could not be audited</h2>", table_html(failed, columns=["practice", "error"], wide_last=True)]
    q = quarters(ledger, pf["practice"].tolist())
    parts += ["<h2>Quarters on record</h2>", "<p>Every quarter each practice was reported on, from the run ledger (the last "
              "successful report of each quarter).</p>",
              table_html(q, columns=["practice", "period", "claim_lines_reviewed", "error_rate_count", "overpayment",
                                     "error_rate_dollars", "missed_revenue"], money=["overpayment", "missed_revenue"],
                         percent=["error_rate_count", "error_rate_dollars"])]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_portfolio_report(pf: pd.DataFrame, ledger: Path, out: Path, period: str) -> Path:
    from ccmlib.report.render import assert_inert, to_pdf

    html = portfolio_html(pf, ledger, period)
    assert_inert(html, "portfolio.html")
    (Path(out) / "portfolio.html").write_text(html, encoding="utf-8")
    to_pdf(Path(out) / "portfolio.html", Path(out) / "portfolio.pdf")
    return Path(out)
