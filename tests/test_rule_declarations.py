"""Issue 23: a rule is one declaration, in one place. Every per-rule fact (its words, its dates, the exclusion flags it
reports, whether it is a threshold rule, what it takes, whether a profile may change it) is declared on the rule
(``@rule(...)`` in ccmlib/engine/rules); the old names elsewhere are derived from the registry; the only per-rule lists
left outside it (the trainer's scenarios, the generator's pitfalls) cover exactly the registered rules."""
import ast
import inspect
import re
from pathlib import Path

import pytest

import ccmlib
from ccmlib.engine.rules import RULES, load_all
from ccmlib.engine.rules.registry import Rule, exclusion_reasons, rule, rule_ids

load_all()
LIB = Path(ccmlib.__file__).parent
RULE_ID = re.compile(r"^(TIME|CONS|ELIG|IV|CP|BILL|REV|SUP|DX|DOC)-\d\d$")
#: the per-rule lists that live outside the registry on purpose, with what they must cover
KEPT_ELSEWHERE = {
    ("workbench/training.py", "SCENARIOS"): "every rule: the trainer's chart change lives with the trainer's seed chart",
    ("synth/generator.py", "PATIENT_PITFALLS"): "part of PITFALLS: how the generator injects the pitfall (per patient)",
    ("synth/generator.py", "MONTH_PITFALLS"): "part of PITFALLS: how the generator injects the pitfall (per month)",
    ("synth/generator.py", "DEFAULT_RATES"): "some rules: the generator's own injection rates that differ from the default",
    ("synth/generator.py", None): "the injection code's branches (np.isin(pitfall, [...])): which chart shape a pitfall needs",
}
#: flags a rule reads without excluding the minutes (SUP-01: unsupervised time still counts)
READ_NOT_EXCLUDED = {"SUP-01": {"x_unsupervised"}}
DATED_TABLES = ("reference/code_dates.csv", "reference/conflicts.csv")


def test_every_rule_is_declared_with_its_words():
    assert len(RULES) == 39
    for rid, r in RULES.items():
        assert RULE_ID.match(rid), rid
        for field in ("title", "citation", "meaning", "fix", "cert_category"):
            text = getattr(r, field)
            assert isinstance(text, str) and text.strip() == text and text, (rid, field, text)
        assert r.severity in ("error", "warning", "info"), rid
        assert r.meaning.endswith(".") and r.fix.endswith("."), rid
        assert r.func is not None and r.func.rule_id == rid, rid


def test_the_words_cannot_be_left_out_and_a_rule_cannot_be_declared_twice():
    with pytest.raises(TypeError, match="meaning"):
        rule("TIME-99", "t", "error", "other", "c")
    with pytest.raises(ValueError, match="TIME-01 declared twice"):
        rule("TIME-01", "t", "error", "other", "c", meaning="m.", fix="f.")(lambda f: None)
    assert RULES["TIME-01"].func.__name__ == "time_01"


def test_the_old_names_are_read_from_the_declarations():
    from ccmlib.engine import prebill, views
    from ccmlib.engine.rules.explain import EXPLAIN, fix, meaning

    assert EXPLAIN == {rid: (r.meaning, r.fix) for rid, r in RULES.items()} and set(EXPLAIN) == set(RULES)
    assert meaning("TIME-04") == RULES["TIME-04"].meaning and fix("CONS-01") == RULES["CONS-01"].fix
    assert views.EXCLUSION_REASONS == exclusion_reasons()
    assert prebill.TIME_THRESHOLD_RULES == rule_ids("threshold") == {"TIME-06", "TIME-07", "TIME-08", "TIME-09"}
    assert rule_ids("takes_every_line") == {"ELIG-01", "ELIG-03"} and rule_ids("fixed_severity") == {"REV-01"}


def test_the_time_log_words_keep_their_order_the_entry_before_the_consent():
    assert exclusion_reasons() == {
        "x_incomplete": "incomplete documentation (TIME-01)", "x_staff": "not clinical staff (TIME-02)",
        "x_overlap": "overlaps another entry (TIME-03)", "x_f2f": "face-to-face (TIME-04)",
        "x_counted": "counted toward another service (TIME-05)", "x_before_consent": "before consent (CONS-05)",
        "x_no_consent": "no consent on file (CONS-05)", "x_after_revocation": "after a revocation, before a new consent (CONS-05)"}
    assert list(exclusion_reasons())[:5] == ["x_incomplete", "x_staff", "x_overlap", "x_f2f", "x_counted"]


def test_a_rule_declares_exactly_the_exclusion_flags_its_query_reports():
    for rid, r in RULES.items():
        read = set(re.findall(r'"(x_[a-z0-9_]+)"', inspect.getsource(r.func).split("\ndef ", 1)[1]))
        declared = {flag for flag, _ in r.excludes}
        assert read - READ_NOT_EXCLUDED.get(rid, set()) == declared, rid
        assert len(declared) == len(r.excludes), rid  # no flag twice
    flags = [flag for r in RULES.values() for flag, _ in r.excludes]
    assert len(flags) == len(set(flags)), "two rules report the same exclusion flag"


def test_a_threshold_rule_is_a_time_rule_that_removes_units_and_no_other_is():
    for rid in rule_ids("threshold"):
        assert RULES[rid].family == "TIME" and RULES[rid].severity == "error" and not RULES[rid].excludes, rid
    assert not rule_ids("threshold") & rule_ids("takes_every_line")


def test_a_dated_rule_names_the_reference_table_that_dates_it_and_only_a_dated_rule_does():
    from ccmlib.engine.rules.describe import describe

    for rid, r in RULES.items():
        reads = [t for t in DATED_TABLES if any(line.startswith("  reference data") and t in line
                                                 for line in describe(rid).splitlines())]
        assert bool(reads) == bool(r.effective), rid
        for t in reads:
            assert t in r.effective and (LIB / t).exists(), rid
        if r.effective:
            assert f"  in force       {r.effective}" in describe(rid)
    assert {rid for rid, r in RULES.items() if r.effective} == {"BILL-03", "BILL-07", "TIME-06", "TIME-10"}


def _per_rule_literals():
    """Every literal dict (by keys), tuple, list or set in ccmlib naming two or more rule ids: (file, name, ids)."""
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                items = node.keys
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                items = node.elts
            else:
                continue
            ids = [k.value for k in items if isinstance(k, ast.Constant) and isinstance(k.value, str) and RULE_ID.match(k.value)]
            if len(ids) >= 2:
                yield rel, node, ids


def _name_of(rel, node):
    """The module-level or local name a literal is assigned to (None: an anonymous literal, e.g. in a call)."""
    tree = ast.parse((LIB / rel).read_text())
    for a in ast.walk(tree):
        if isinstance(a, ast.Assign) and len(a.targets) == 1 and isinstance(a.targets[0], ast.Name):
            if a.value.lineno == node.lineno and a.value.col_offset == node.col_offset:
                return a.targets[0].id
    return None


def test_no_per_rule_list_outside_the_registry_but_the_ones_kept_on_purpose():
    found = {}
    for rel, node, ids in _per_rule_literals():
        if rel.startswith("engine/rules/"):
            continue  # the registry itself (the declarations)
        found[(rel, _name_of(rel, node))] = ids
    assert set(found) == set(KEPT_ELSEWHERE), (
        "a list or dict keyed by rule ids outside the rule declarations: declare the fact on the rule (@rule) and derive "
        f"the list from the registry; found {sorted(found, key=str)}")


def test_the_lists_kept_elsewhere_cover_exactly_the_registered_rules():
    from ccmlib.synth.generator import DEFAULT_RATES, MONTH_PITFALLS, PATIENT_PITFALLS, PITFALLS
    from ccmlib.workbench.training import SCENARIOS

    assert set(SCENARIOS) == set(RULES) and len(SCENARIOS) == len(RULES)
    assert set(PITFALLS) == set(RULES) and len(PITFALLS) == len(RULES)  # every rule can be injected, once
    assert not set(PATIENT_PITFALLS) & set(MONTH_PITFALLS)
    assert set(DEFAULT_RATES) < set(RULES)


def test_every_rule_id_the_library_names_is_a_registered_rule():
    unknown = set()
    for path in sorted(LIB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and RULE_ID.match(node.value):
                if node.value not in RULES:
                    unknown.add((path.relative_to(LIB).as_posix(), node.value))
    assert not unknown


def test_every_family_has_its_report_criterion():
    from ccmlib.report.tables import CRITERIA

    assert {r.family for r in RULES.values()} | {"CHART"} == set(CRITERIA)


def test_the_declaration_is_the_rule_the_catalog_lists():
    from ccmlib.engine.rules import catalog

    cat = catalog()
    assert list(cat.columns) == ["id", "title", "severity", "cert_category", "citation", "needs"]
    assert list(cat["id"]) == sorted(RULES) and all(isinstance(r, Rule) for r in RULES.values())
    assert dict(zip(cat["id"], cat["title"])) == {rid: r.title for rid, r in RULES.items()}


def test_a_findings_message_is_built_only_for_rows_found_and_as_given_for_them():
    """A rule may give its message as a function (most rules find nothing on most charts; its texts then cost nothing):
    not called without rows, and the same frame as the text itself with them; without rows the same empty frame."""
    import numpy as np
    import pandas as pd
    from ccmlib.engine.rules.registry import raw

    calls = []
    rows = pd.DataFrame({"patient_id": ["P1", "P2"], "mkey": [24312, 24313]})
    text = "month " + rows["mkey"].astype(str)

    def message():
        calls.append(1)
        return text

    none = rows.iloc[:0]
    got = raw(none, "pm", message)
    assert not calls
    pd.testing.assert_frame_equal(got, raw(none, "pm", none["mkey"].astype(str)))
    assert got["message"].dtype == np.dtype(object)
    pd.testing.assert_frame_equal(raw(rows, "pm", message), raw(rows, "pm", text))
    assert calls == [1]
    pd.testing.assert_frame_equal(raw(rows, "pm", lambda: "the same text"), raw(rows, "pm", "the same text"))
