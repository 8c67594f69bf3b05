"""The class handout: a question version with no verdict, a separate answer key with the engine's verdicts, one
rendering route (templates/handout/, autoescaped), and the command that writes both."""
import re
from html import unescape

import pytest

from conftest import run_cli
from ccmlib.engine.rules import load_all
from ccmlib.engine.rules.explain import EXPLAIN
from ccmlib.report.templating import render
from ccmlib.synth.examples import entry
from ccmlib.workbench import training
from ccmlib.workbench.training import SCENARIOS, handout, handout_data, scenario_chart, verdict


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("handout")
    handout(out)
    return out


def sections(html: str) -> list[str]:
    """The text of each case, in order."""
    return [unescape(re.sub(r"<[^>]+>", "", s)) for s in re.findall(r'<section class="case">(.*?)</section>', html, re.S)]


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_question_version_has_no_verdict(built):
    html = (built / "handout.html").read_text()
    cases = sections(html)
    assert len(cases) == len(SCENARIOS)
    whole = words(unescape(re.sub(r"<[^>]+>", " ", html)))
    assert "supported" not in whole.lower() and "answer:" not in whole.lower()
    for rid, text in zip(SCENARIOS, cases):
        text = words(text)
        assert SCENARIOS[rid][0] in text  # the case's chart is there ...
        assert "Rule at stake" in text and "Medicare overpaid" in text  # ... with the question under it
        why, fix = EXPLAIN[rid]
        assert fix not in whole and why not in whole, rid  # no fix, no explanation
        assert rid not in whole and load_all()[rid].title not in whole, rid  # no rule named
        assert load_all()[rid].citation not in whole, rid


def test_the_answer_key_has_each_scenarios_verdict_as_the_engine_computes_it(built):
    cases = [words(t) for t in sections((built / "answer_key.html").read_text())]
    assert len(cases) == len(SCENARIOS)
    for n, (rid, text) in enumerate(zip(SCENARIOS, cases), 1):
        assert text.startswith(f" Case {n} · {rid}: ") or text.startswith(f"Case {n} · {rid}: "), text[:60]
        supported = load_all()[rid].severity != "error"  # what the engine computes for the scenario (test_workbench)
        assert f"Answer: {'supported' if supported else 'not fully supported'}:" in text, rid
        assert f"Fix: {EXPLAIN[rid][1]}" in text and f"Why: {EXPLAIN[rid][0]}" in text
        assert f"{rid} (" in text  # the finding of the scenario's own rule
    # the figures are the engine's: a few scenarios audited on their own, one chart at a time
    for rid in ("TIME-07", "BILL-06", "REV-01"):
        v = verdict(scenario_chart(rid))
        text = cases[list(SCENARIOS).index(rid)]
        assert (f"billed {v['codes_billed']}, supported {v['codes_supported'] or 'nothing'} on {v['qualifying_minutes']:g} "
                f"qualifying minutes; overpayment ${v['overpayment']:,.2f}") in text, rid
        for f in v["findings"]:
            assert f"{f['rule_id']} ({f['severity']}): {f['message']}" in text


def test_both_pdfs_are_written(built):
    for name in ("handout", "answer_key"):
        pdf = (built / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_a_hostile_string_in_a_scenario_stays_text(monkeypatch):
    hostile = "<script>alert(1)</script>"
    monkeypatch.setitem(SCENARIOS, "TIME-01", (f"An entry says {hostile}.",
                                               lambda c: c["time_entries"].append(entry("E3", 10, description="", activity=hostile))))
    data = handout_data(["TIME-01"])
    for name in ("handout", "answer_key"):
        html = render(f"handout/{name}.html.j2", **data)
        assert "<script" not in html and html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2, name  # situation and chart
    v = data["cases"][0]["verdict"]
    assert v["findings"]  # the engine still judged the chart


def test_the_seed_and_the_changes_come_from_the_charts():
    data = handout_data(["CONS-02", "BILL-02"])
    cons, bill = data["cases"]
    assert cons["changes"] == [{"row": "consent 1", "change": "changed",
                                "fields": [{"field": "informed_cost_sharing", "before": "yes", "after": ""}]}]
    assert bill["changes"][0]["row"] == "claim C2 line 1" and bill["changes"][0]["change"] == "added"
    assert [b["code"] for b in bill["billed"]] == ["99490", "99490"]
    assert {s["what"] for s in data["seed"]} >= {"Consent", "Care plan", "Time log", "Billed"}
    assert list(pd_rows(data["key"])) == [(1, "CONS-02", "not fully supported", 66.13), (2, "BILL-02", "not fully supported", 66.13)]
    with pytest.raises(KeyError, match="NOPE-1"):
        handout_data(["NOPE-1"])


def pd_rows(parts):
    for part in parts:
        yield from part.itertuples(index=False, name=None)


def test_the_command_writes_the_questions_and_the_key(tmp_path):
    out = tmp_path / "class"
    r = run_cli("handout", "--out", out, "--rules", "TIME-06,CONS-02")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "answer_key.pdf" in r.stdout
    for f in ("handout.html", "handout.pdf", "answer_key.html", "answer_key.pdf"):
        assert (out / f).is_file(), f
    assert len(sections((out / "handout.html").read_text())) == 2
    bad = run_cli("handout", "--out", tmp_path / "x", "--rules", "NOPE-1")
    assert bad.returncode == 2 and "NOPE-1" in bad.stderr


def test_the_same_scenarios_give_the_same_html(tmp_path):
    a = render("handout/answer_key.html.j2", **handout_data(["TIME-06", "DOC-02"]))
    b = render("handout/answer_key.html.j2", **handout_data(["TIME-06", "DOC-02"]))
    assert a == b
