"""The rule registry: one entry per rule ID of the catalog (``ccm-rules.md`` v3).

A rule function takes :class:`~ccmlib.facts.Facts` and returns raw findings, a DataFrame with
``patient_id, mkey, scope, message`` and, by scope, ``billing_npi`` (``npi``), ``claim_id, line,
cpt_code, units_removed`` (``line``) or ``entry_id`` (``entry``). ``scope = pm`` findings of an
error rule make every CCM line of the patient-month unsupported; ``npi`` ones the lines of that
practitioner; ``line`` ones remove ``units_removed`` units of one line. A ``severity`` column, when
present, overrides the rule's default (BILL-03 has both). An auditor's added finding (chart review, see
:mod:`ccmlib.engine.decisions`) has scope ``line`` or ``pm_all`` (every CCM line of the patient-month).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import pandas as pd

RULE_CATALOG_VERSION = "3"

RAW_COLUMNS = ["patient_id", "mkey", "scope", "billing_npi", "claim_id", "line", "cpt_code", "entry_id",
               "units_removed", "message", "severity"]


@dataclass(frozen=True)
class Rule:
    """One rule of the catalog, declared once, on its function (:func:`rule`): everything the engine, the report, the
    pre-bill, the workbench and ``ccm-audit rules --show`` say about it is read from here."""
    id: str
    title: str
    severity: str  # error | warning | info
    cert_category: str
    citation: str
    needs: tuple[str, ...]
    func: Callable | None = None
    phase: int = 1  # 2: runs after the first phase's findings are settled, and takes them (REV-01)
    #: what a finding means, in plain words (the report, the pre-bill worklist, the workbench, the handout)
    meaning: str = ""
    #: the corrective action that prevents it
    fix: str = ""
    #: when the rule applies, for a dated rule: the reference table (and its row) that dates it; the dates themselves
    #: stay in that table ('' = in force throughout)
    effective: str = ""
    #: time-entry rules: the facts' exclusion flags it reports, with the words the time log shows for each, in order
    #: (the flags are computed in facts.py; the rule does not count such minutes)
    excludes: tuple[tuple[str, str], ...] = ()
    #: the rule only says the month's minutes fall short of a threshold: more time fixes it (the pre-bill's "needs
    #: minutes", not "blocked")
    threshold: bool = False
    #: an error finding of scope pm takes every CCM line of the month, G0506 included (not only the time-based lines)
    takes_every_line: bool = False
    #: no profile may change its severity (it is not a compliance judgement: REV-01's missed revenue)
    fixed_severity: bool = False

    @property
    def family(self) -> str:
        return self.id.split("-")[0]


RULES: dict[str, Rule] = {}


def rule(id: str, title: str, severity: str, cert_category: str, citation: str, needs: tuple[str, ...] = (), phase: int = 1,
         *, meaning: str, fix: str, effective: str = "", excludes: tuple[tuple[str, str], ...] = (), threshold: bool = False,
         takes_every_line: bool = False, fixed_severity: bool = False):
    """Register a rule function under its catalog ID (``phase=2``: it takes the first phase's standing findings), with
    its words (``meaning``, ``fix``) and the per-rule facts the rest of the library reads (see :class:`Rule`)."""
    def wrap(func):
        if id in RULES:
            raise ValueError(f"rule {id} declared twice")
        RULES[id] = Rule(id, title, severity, cert_category, citation, tuple(needs), func, phase, meaning, fix, effective,
                         tuple((str(flag), str(words)) for flag, words in excludes), threshold, takes_every_line,
                         fixed_severity)
        func.rule_id = id
        return func
    return wrap


def exclusion_reasons() -> dict[str, str]:
    """Why a time entry does not count, by the facts' exclusion flag: the words each time-entry rule declares, with
    its id ("face-to-face (TIME-04)"); the entry's own defects (TIME) first, then the consent's (CONS-05), each by id."""
    from ccmlib.engine.rules import load_all
    rules = sorted((r for r in load_all().values() if r.excludes), key=lambda r: (r.family != "TIME", r.id))
    return {flag: f"{words} ({r.id})" for r in rules for flag, words in r.excludes}


def rule_ids(attribute: str) -> frozenset[str]:
    """The ids of the rules whose declaration sets ``attribute`` (e.g. ``threshold``, ``takes_every_line``)."""
    from ccmlib.engine.rules import load_all
    return frozenset(r.id for r in load_all().values() if getattr(r, attribute))


def raw(df: pd.DataFrame, scope: str, message, **cols) -> pd.DataFrame:
    """Build raw findings from the rows of ``df`` (which has patient_id and mkey), in one frame construction.
    ``message``: text, a Series of texts, or a function of no arguments giving either, called only when ``df`` has rows
    (most rules find nothing on most charts, and building the texts is most of a rule's time on a small chart)."""
    n = len(df)
    if callable(message):
        message = message() if n else ""

    def col(v, dtype=object):
        return v.to_numpy() if isinstance(v, pd.Series) else np.full(n, v, dtype=dtype if v is None or isinstance(v, str) else None)

    data = {"patient_id": df["patient_id"].to_numpy(), "mkey": df["mkey"].to_numpy(), "scope": np.full(n, scope, dtype=object)}
    for c in ("billing_npi", "claim_id", "line", "cpt_code", "entry_id"):
        data[c] = col(cols.pop(c, df[c] if c in df.columns and scope in ("line", "npi", "entry") else None))
    data["units_removed"] = col(cols.pop("units_removed", df["units"] if scope == "line" and "units" in df.columns else 0))
    data["message"] = message.to_numpy() if isinstance(message, (pd.Series, pd.Index)) else col(message)
    data["severity"] = col(cols.pop("severity", None))
    if cols:
        raise TypeError(f"unknown columns {sorted(cols)}")
    if not n:  # most rules find nothing on most charts: the empty frame of these dtypes, built once
        return _empty_raw(tuple(v.dtype for v in data.values())).copy(deep=False)
    return pd.DataFrame(data)  # the keys above are RAW_COLUMNS, in order (naming them again costs a reindex)


@lru_cache(maxsize=None)
def _empty_raw(dtypes: tuple) -> pd.DataFrame:
    """No raw findings, with the columns and dtypes :func:`raw` gives them (a copy of it is returned, never itself)."""
    return pd.DataFrame({c: np.array([], dtype=d) for c, d in zip(RAW_COLUMNS, dtypes)})


def not_documented(df: pd.DataFrame, prefix: str, elements, drop: str = "") -> pd.Series:
    """Per row, the comma-separated ``elements`` whose ``prefix + element`` boolean is not true ('' = all present)."""
    names = [c.replace(drop, "").replace("_", " ") for c in elements]
    if not len(df) or not names:
        return pd.Series("", index=df.index, dtype="object")
    # the text is built once per distinct combination of missing elements (a handful), then spread to the rows
    if len(names) > 62:
        raise ValueError("not_documented: at most 62 elements")
    key = np.zeros(len(df), dtype=np.int64)
    for bit, c in enumerate(elements):
        key = key + (~df[prefix + c].fillna(False).astype(bool).to_numpy()).astype(np.int64) * (1 << bit)
    which, combos = pd.factorize(key)
    text = np.array(["".join(n + ", " for bit, n in enumerate(names) if (int(combo) >> bit) & 1).rstrip(", ") for combo in combos],
                    dtype=object)
    return pd.Series(text[which], index=df.index, dtype="object")


def catalog() -> pd.DataFrame:
    """Every rule with its ID, title, severity, CERT category and citation (for reports)."""
    from ccmlib.engine.rules import load_all
    load_all()
    return pd.DataFrame([{k: getattr(r, k) for k in ("id", "title", "severity", "cert_category", "citation")}
                         | {"needs": ",".join(r.needs)} for r in sorted(RULES.values(), key=lambda r: r.id)])


def minutes_text(m: pd.Series) -> pd.Series:
    """Minutes as a message prints them: whole minutes without a decimal (33, not 33.0), a fraction to one decimal."""
    v = m.to_numpy(dtype="float64", na_value=np.nan)
    v = np.where(np.isnan(v), 0.0, v).round(1)
    # the text of each distinct value (a handful), as Python writes the number; spread to the rows
    uniq, at = np.unique(v, return_inverse=True)
    text = np.array([str(int(u)) if u % 1 == 0 else str(float(u)) for u in uniq], dtype=object)
    return pd.Series(text[at.reshape(-1)], index=m.index)
