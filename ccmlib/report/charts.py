"""Report figures (matplotlib). Each returns a Figure; the notebook displays it inline."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

SEVERITY_COLORS = {"error": "#b2182b", "warning": "#ef8a62", "info": "#4393c3"}


def _wrap(text: str, width: int = 48) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def minutes_histogram(dist: pd.DataFrame):
    """Billed patient-months per 5-minute band of qualifying minutes (the engine's distribution) against the 20/40/60
    thresholds."""
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    ax.bar(dist["from"], dist["patient_months"], width=4.6, align="edge", color="#6a8caf")
    for t in (20, 40, 60):
        ax.axvline(t, color="#b2182b", linestyle="--", linewidth=1)
        ax.text(t + 0.8, ax.get_ylim()[1] * 0.92, f"{t} min", color="#b2182b", fontsize=8)
    ax.set_xlabel("qualifying minutes in the month (120 or more shown at 120)")
    ax.set_ylabel("billed patient-months")
    ax.set_title("Qualifying minutes per billed patient-month")
    fig.tight_layout()
    return fig


FINDINGS_SHOWN = 24


def findings_by_rule(rules: pd.DataFrame):
    """Findings per requirement, the FINDINGS_SHOWN with the most (all are in section 2's tables), labels readable."""
    fired = rules[rules["findings"] > 0]
    r = fired.sort_values(["findings", "id"], ascending=[False, True], kind="mergesort").head(FINDINGS_SHOWN).iloc[::-1]
    labels = [_wrap(f"{t} ({i})", 70) for t, i in zip(r["title"], r["id"])]
    rows = sum(x.count("\n") + 1 for x in labels)
    need = 0.15 * rows + 0.1 * len(r) + 0.9  # inches for every wrapped label at 6.5 pt
    height = min(8.4, max(2.0, need))  # never taller than a page: the labels get smaller instead
    fig, ax = plt.subplots(figsize=(7.5, height))
    ax.barh(labels, r["findings"], color=r["severity"].map(SEVERITY_COLORS))
    ax.tick_params(axis="y", labelsize=max(4.5, 6.5 * min(1.0, (height - 0.9) / max(need - 0.9, 0.1))))
    ax.set_xlabel("findings")
    shown = "" if len(fired) <= FINDINGS_SHOWN else f", the {FINDINGS_SHOWN} with most of {len(fired)}"
    ax.set_title(f"Findings by requirement (red error, orange warning, blue opportunity{shown})", fontsize=10)
    fig.tight_layout()
    return fig


def error_rates(staff: pd.DataFrame, months: pd.DataFrame):
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.2))
    top = staff.head(15)
    label = top["staff_id"].astype(str) + (" (" + top["role"].astype(str) + ")" if "role" in top else "")
    a.barh(label[::-1], top["error_rate"][::-1] * 100, color="#6a8caf")
    a.tick_params(axis="y", labelsize=7)
    a.set_xlabel("% of billed patient-months with an error")
    a.set_title(f"By staff member{' (top 15 of ' + str(len(staff)) + ')' if len(staff) > 15 else ''}", fontsize=10)
    b.plot(months["service_month"], months["error_rate_count"] * 100, marker="o", color="#b2182b", clip_on=False)
    b.set_ylim(0, max(5.0, float((months["error_rate_count"] * 100).max() or 0) * 1.15))  # headroom: no point on the frame
    b.margins(x=0.08)
    b.set_ylabel("% of claim lines not fully supported")
    b.set_title("By month", fontsize=10)
    b.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def dollars_at_risk(rules: pd.DataFrame):
    r = rules[(rules["amount"] > 0) & (rules["severity"] == "error")].sort_values("amount")
    fig, ax = plt.subplots(figsize=(7.5, max(2.0, 0.24 * len(r) + 0.9)))
    ax.barh([_wrap(t) for t in r["title"]], r["amount"], color="#b2182b")
    ax.tick_params(axis="y", labelsize=6.5)
    ax.set_xlabel("dollars each requirement alone puts at risk (they overlap)")
    ax.xaxis.set_major_formatter(lambda v, _: f"${v:,.0f}")
    ax.set_title("Dollars at risk by requirement")
    fig.tight_layout()
    return fig


def trend_chart(tr: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    ax.plot(tr["period"], tr["error_rate_count"] * 100, marker="o", label="claim lines in error (%)", clip_on=False)
    ax.plot(tr["period"], tr["error_rate_dollars"] * 100, marker="s", label="dollars in error (%)", clip_on=False)
    top = float(pd.concat([tr["error_rate_count"], tr["error_rate_dollars"]]).astype(float).max() or 0) * 100
    ax.set_ylim(0, max(5.0, top * 1.15))  # headroom: no marker on the frame
    ax.margins(x=0.08)
    ax.set_ylabel("% in error")
    ax.legend(fontsize=8)
    ax.set_title("Trend by quarter")
    fig.tight_layout()
    return fig


def enrolments(enr: pd.DataFrame):
    """New CCM patients (first consent) per month, spikes in red."""
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.bar(enr["month"], enr["new_patients"], color=np.where(enr["spike"].astype(bool), "#b2182b", "#6a8caf"))
    ax.set_ylabel("new CCM patients")
    ax.set_title("New CCM patients by month of first consent (red: spike)")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.tight_layout()
    return fig
