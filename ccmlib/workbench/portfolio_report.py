"""The consultant's portfolio report (HTML and PDF): the practices of a batch side by side for the period with a total
row, their most frequent pitfalls named in words, and from the run ledger every quarter each practice was reported on.
Figures come from each practice's run.json summary (via portfolio.csv) and the ledger's recorded headlines, never
recomputed; the total row adds up counts and dollars and computes its rates from those sums. Python builds the data
here; ``templates/portfolio/portfolio.html.j2`` lays it out (one escaping policy, the shared print stylesheet)."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd

from ccmlib.report.ledger import runs

#: the practices table: (portfolio column, header, kind); each column holds one kind of value, formatted as its kind
COLUMNS = [
    ("practice", "Practice", "text"),
    ("claim_lines", "Claim lines", "count"),
    ("claim_lines_in_error", "Lines not fully supported", "count"),
    ("error_rate_count", "Error rate (lines)", "percent"),
    ("billed_patient_months", "Billed patient-months", "count"),
    ("error_findings", "Error findings", "count"),
    ("errors_per_100_billed_pm", "Errors per 100 billed patient-months", "rate"),
    ("paid_amount", "Paid", "money"),
    ("overpayment", "Overpayment (refund to Medicare)", "money"),
    ("cost_sharing", "Patients' cost sharing (refund to patients)", "money"),
    ("error_rate_dollars", "Error rate (dollars)", "percent"),
    ("overpayment_per_billed_line", "Overpayment per billed line", "money"),
    ("missed_revenue", "Missed revenue", "money"),
]
#: the columns the total row adds up (the rest of its figures are rates computed from these sums)
SUMMED = ["claim_lines", "claim_lines_in_error", "billed_patient_months", "error_findings", "paid_amount", "overpayment",
          "cost_sharing", "missed_revenue"]
QUARTER_COLUMNS = [
    ("practice", "Practice", "text"), ("period", "Quarter", "text"), ("claim_lines_reviewed", "Claim lines", "count"),
    ("error_rate_count", "Error rate (lines)", "percent"), ("overpayment", "Overpayment", "money"),
    ("error_rate_dollars", "Error rate (dollars)", "percent"), ("missed_revenue", "Missed revenue", "money"),
]
FAILED_COLUMNS = [("practice", "Practice", "text"), ("error", "Why it could not be audited", "text")]
#: one item of portfolio.csv's top_pitfalls as :func:`ccmlib.workbench.portfolio._top` writes it: "CONS-02 (5)"
_PITFALL = re.compile(r"^(?P<id>\S+) \((?P<findings>\d+)\)$")


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


def totals(ok: pd.DataFrame) -> dict:
    """The total row of the audited practices: counts and dollars summed; every rate computed from those sums (the
    portfolio's error rate is its lines in error over its lines, not the average of the practices' rates)."""
    s = {c: (ok[c].astype(float).sum() if c in ok else float("nan")) for c in SUMMED}
    for c in ("claim_lines", "claim_lines_in_error", "billed_patient_months", "error_findings"):
        s[c] = int(s[c]) if s[c] == s[c] else None
    for c in ("paid_amount", "overpayment", "cost_sharing", "missed_revenue"):
        s[c] = round(float(s[c]), 2)

    def ratio(num, den, scale=1.0):
        return None if num is None or not den else scale * num / den
    return {"practice": f"Total, {len(ok)} practice{'' if len(ok) == 1 else 's'}", **s,
            "error_rate_count": ratio(s["claim_lines_in_error"], s["claim_lines"]),
            "errors_per_100_billed_pm": ratio(s["error_findings"], s["billed_patient_months"], 100.0),
            "error_rate_dollars": ratio(s["overpayment"], s["paid_amount"]),
            "overpayment_per_billed_line": ratio(s["overpayment"], s["claim_lines"])}


def pitfalls_in_words(top: str) -> list[dict]:
    """portfolio.csv's top_pitfalls ("CONS-02 (5), CP-01 (3)") as the rule catalog's titles with their ids and counts."""
    from ccmlib.engine.rules.registry import catalog

    titles = catalog().set_index("id")["title"]
    out = []
    for item in [t for t in str(top or "").split(", ") if t]:
        m = _PITFALL.match(item)
        if not m:
            raise ValueError(f"top_pitfalls: {item!r} is not 'RULE-ID (findings)'")
        out.append({"id": m["id"], "title": titles.get(m["id"], m["id"]), "findings": int(m["findings"])})
    return out


def _records(df: pd.DataFrame, columns) -> list[dict]:
    """Rows as plain Python values (None where the frame has no value) for the template."""
    keys = [k for k, _, _ in columns]
    df = df.reindex(columns=keys)
    return [{k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in zip(keys, row)}
            for row in df.itertuples(index=False, name=None)]


def _figure_png(ok: pd.DataFrame) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ccmlib.workbench.portfolio import comparison_figure
    fig = comparison_figure(ok)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def portfolio_data(pf: pd.DataFrame, ledger: Path, period: str, chart: bool = True) -> dict:
    """What the portfolio report shows (data only)."""
    ok = pf[pf["status"] == "ok"]
    failed = pf[pf["status"] != "ok"]
    columns = list(COLUMNS)
    # catalog v3 profiles: one for every practice is named above the table, several get a column
    profiles = sorted(set(ok["profile"].fillna("").astype(str).str.strip()) - {""}) if "profile" in ok else []
    if len(profiles) > 1:
        columns.insert(1, ("profile", "Profile", "text"))
    if "error_findings" not in ok:  # a portfolio.csv written before the column existed: no per-100 rate in the total
        columns = [c for c in columns if c[0] != "error_findings"]
    return {"period": period, "profile": profiles[0] if len(profiles) == 1 else "", "n_ok": len(ok), "n_practices": len(pf), "columns": columns, "rows": _records(ok, columns),
            "total": {**dict.fromkeys(k for k, _, _ in columns), **totals(ok)} if len(ok) else None,
            "pitfalls": [{"practice": r.practice, "rules": pitfalls_in_words(r.top_pitfalls)} for r in ok.itertuples()],
            "chart": _figure_png(ok) if chart and len(ok) else None,
            "failed_columns": FAILED_COLUMNS, "failed": _records(failed, FAILED_COLUMNS),
            "quarter_columns": QUARTER_COLUMNS, "quarters": _records(quarters(ledger, pf["practice"].tolist()), QUARTER_COLUMNS)}


def portfolio_html(pf: pd.DataFrame, ledger: Path, period: str, chart: bool = True) -> str:
    from ccmlib.report.templating import render

    return render("portfolio/portfolio.html.j2", **portfolio_data(pf, ledger, period, chart))


def write_portfolio_report(pf: pd.DataFrame, ledger: Path, out: Path, period: str) -> Path:
    from ccmlib.report.render import assert_inert, to_pdf

    html = portfolio_html(pf, ledger, period)
    assert_inert(html, "portfolio.html")
    (Path(out) / "portfolio.html").write_text(html, encoding="utf-8")
    to_pdf(Path(out) / "portfolio.html", Path(out) / "portfolio.pdf")
    return Path(out)
