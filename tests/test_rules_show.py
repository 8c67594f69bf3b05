"""`ccm-audit rules --show RULE` (issue 23): one rule's declaration and the query that flags a line, for every rule."""
import subprocess
import sys

import pytest

from ccmlib.engine.rules import RULES, load_all
from ccmlib.engine.rules.describe import describe
from ccmlib.errors import InputError


def test_every_rule_shows_its_declaration_and_its_own_code():
    load_all()
    for rid, r in RULES.items():
        text = describe(rid)
        assert text.startswith(f"{rid}  {r.title}") and r.citation in text and f"def {r.func.__name__}(" in text, rid


def test_the_query_includes_the_helpers_it_calls_and_the_reference_data_it_reads():
    text = describe("time-07")  # any case
    assert "def _addon_excess(" in text and "addon_units(" in text and "reference/codes.py" in text
    assert "reference/conflicts.csv" in describe("BILL-03")
    assert "severity       error under profile strict-mac" in describe("SUP-01", "strict-mac")
    from ccmlib.workbench.training import SCENARIOS
    assert f"training       {SCENARIOS['TIME-07'][0]}" in describe("TIME-07", scenarios=SCENARIOS)


def test_an_unknown_rule_is_exit_2_naming_the_rules_of_its_family():
    with pytest.raises(InputError, match="no such rule .*TIME-01, TIME-02"):
        describe("TIME-99")
    p = subprocess.run([sys.executable, "-m", "ccmlib.cli", "rules", "--show", "TIME-99"], capture_output=True, text=True)
    assert p.returncode == 2 and "TIME-10" in p.stderr
