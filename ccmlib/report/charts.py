"""Report figures (matplotlib). Each returns a Figure; the notebook displays it inline."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

SEVERITY_COLORS = {"error": "#b2182b", "warning": "#ef8a62", "info": "#4393c3"}


def minutes_histogram(pm: pd.DataFrame):
    """Qualifying minutes per patient-month against the 20/40/60-minute thresholds."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    m = pm["qualifying_minutes"].clip(upper=120)
    ax.hist(m, bins=np.arange(0, 125, 5), color="#6a8caf", edgecolor="white")
    for t in (20, 40, 60):
        ax.axvline(t, color="#b2182b", linestyle="--", linewidth=1)
        ax.text(t + 0.8, ax.get_ylim()[1] * 0.92, f"{t} min", color="#b2182b", fontsize=8)
    ax.set_xlabel("qualifying minutes in the month (120+ shown at 120)")
    ax.set_ylabel("patient-months")
    ax.set_title("Qualifying minutes per patient-month")
    fig.tight_layout()
    return fig


def findings_by_rule(rules: pd.DataFrame):
    r = rules[rules["findings"] > 0].sort_values("findings")
    fig, ax = plt.subplots(figsize=(7.5, max(2.0, 0.28 * len(r) + 0.8)))
    ax.barh(r["id"], r["findings"], color=r["severity"].map(SEVERITY_COLORS))
    ax.set_xlabel("findings")
    ax.set_title("Findings by rule (red error, orange warning, blue opportunity)")
    fig.tight_layout()
    return fig


def error_rates(staff: pd.DataFrame, months: pd.DataFrame):
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.2))
    top = staff.head(15)
    a.barh(top["staff_id"][::-1], top["error_rate"][::-1] * 100, color="#6a8caf")
    a.set_xlabel("% of billed patient-months with an error")
    a.set_title("By staff member (top 15)", fontsize=10)
    b.plot(months["service_month"], months["error_rate"] * 100, marker="o", color="#b2182b")
    b.set_ylim(bottom=0)
    b.set_ylabel("% of claim lines not fully supported")
    b.set_title("By month", fontsize=10)
    b.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def dollars_at_risk(rules: pd.DataFrame):
    r = rules[(rules["amount"] > 0) & (rules["severity"] == "error")].sort_values("amount")
    fig, ax = plt.subplots(figsize=(7.5, max(2.0, 0.28 * len(r) + 0.8)))
    ax.barh(r["id"], r["amount"], color="#b2182b")
    ax.set_xlabel("dollars each rule alone puts at risk")
    ax.set_title("Dollars at risk by rule")
    fig.tight_layout()
    return fig


def trend_chart(tr: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    ax.plot(tr["period"], tr["error_rate_count"] * 100, marker="o", label="claim lines in error (%)")
    ax.plot(tr["period"], tr["error_rate_dollars"] * 100, marker="s", label="dollars in error (%)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("Trend by quarter")
    fig.tight_layout()
    return fig
