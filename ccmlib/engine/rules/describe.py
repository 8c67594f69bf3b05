"""`ccm-audit rules --show RULE`: everything that defines one rule, so an auditor can read exactly what flagged a line:
its declaration (id, title, severity, CERT category, citation, the tables it needs), what it means and the fix, the
training scenario that shows it, the dated reference data it reads, and the query itself (the rule function's source).
"""
from __future__ import annotations

import inspect
import re
import textwrap

from ccmlib.errors import InputError

#: reference tables a rule can read, by the name its code calls them under, with the file that holds them
REFERENCE_FILES = {"conflicts": "reference/conflicts.csv", "code_dates": "reference/code_dates.csv",
                   "fee_schedule": "reference/fee_schedule.csv", "sequestration": "reference/sequestration.csv",
                   "map_conditions": "reference/chronic_conditions.csv", "valid_icd10": "simple-icd-10-cm (ICD-10-CM code set)",
                   "INITIATING_VISITS": "reference/initiating_visits.csv", "initiating_visits": "reference/initiating_visits.csv",
                   "G0506_HOSTS": "reference/codes.py (G0506 host visits)", "TIME_RULES": "reference/codes.py (time thresholds)",
                   "addon_units": "reference/codes.py (add-on units per minutes)", "multi_service_from": "reference/code_dates.csv",
                   "last_billable": "reference/code_dates.csv"}


def describe(rule_id: str, profile=None, scenarios: dict | None = None) -> str:
    """The declaration and the query of ``rule_id`` as text (``profile``: the severity that profile gives it;
    ``scenarios``: the trainer's scenarios, rule id -> (description, ...), passed in by the caller: the engine does not
    import the workbench)."""
    from ccmlib.engine.rules import RULES, load_all

    load_all()
    key = str(rule_id).strip().upper()
    if key not in RULES:
        close = [r for r in sorted(RULES) if r.split("-")[0] == key.split("-")[0]] or sorted(RULES)
        raise InputError(f"--show {rule_id!r}: no such rule (rules of that family: {', '.join(close)})")
    r = RULES[key]
    severity = r.severity
    if profile is not None:
        from ccmlib.engine import profiles
        cat = profiles.catalog(profile).set_index("id")
        severity = f"{cat.loc[key, 'severity']} under profile {profiles.load_profile(profile).name} (catalog: {r.severity})"
    source = inspect.getsource(r.func) if r.func is not None else "(no query: raised by the chart review)\n"
    module = inspect.getmodule(r.func) if r.func is not None else None
    helpers = [getattr(module, h) for h in sorted(set(re.findall(r"\b(_[a-z][a-z0-9_]*)\(", source)))
               if inspect.isfunction(getattr(module, h, None))]  # the module's own helpers the rule calls, one level
    called = "".join("\n" + inspect.getsource(h) for h in helpers)
    reads = sorted({f for name, f in REFERENCE_FILES.items() if re.search(rf"\b{name}\b", source + called)})
    lines = [f"{r.id}  {r.title}",
             f"  severity       {severity}",
             f"  CERT category  {r.cert_category}",
             f"  citation       {r.citation}",
             f"  needs tables   {', '.join(r.needs) or '(none)'}" + ("   (runs after the first phase's findings are settled)" if r.phase == 2 else ""),
             f"  what it means  {r.meaning}",
             f"  the fix        {r.fix}"]
    if r.effective:
        lines.append(f"  in force       {r.effective}")
    if r.excludes:
        lines.append(f"  excludes       {'; '.join(f'{words} (flag {flag})' for flag, words in r.excludes)}: the minutes do not count")
    if r.threshold:
        lines.append("  threshold      only says the month's minutes fall short: more documented time fixes it")
    if r.takes_every_line:
        lines.append("  takes          every CCM line of the month, G0506 included (not only the time-based lines)")
    if r.fixed_severity:
        lines.append("  severity fixed no profile may change it")
    scenario = (scenarios or {}).get(key, ("",))[0]
    if scenario:
        lines.append(f"  training       {scenario}")
    if reads:
        lines.append(f"  reference data {'; '.join(reads)}")
    lines += ["", "What it takes: an error finding's scope decides the claim units it removes (see ccmlib/engine/money.py): "
              "scope pm = every time-based CCM line of the patient-month, npi = that practitioner's lines, line = the units it "
              "names, entry = the time entry's minutes (which can bring a month under a threshold).", "",
              f"The query ({inspect.getsourcefile(r.func).split('ccmlib/')[-1] if r.func else ''}):", "",
              textwrap.indent(source.rstrip(), "    ")]
    if helpers:
        lines += ["", "and the helpers of the same module it calls:", "", textwrap.indent(called.strip(), "    ")]
    lines += ["", "The facts it reads (qualifying minutes, the consent and care plan in force, commencement, conditions) are "
              "built once per run in ccmlib/engine/facts.py."]
    return "\n".join(lines) + "\n"
