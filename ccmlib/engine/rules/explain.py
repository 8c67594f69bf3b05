"""Each rule in plain words: what a finding means and what fixes it (the report, the pre-bill worklist, the workbench
and the training handout show these). The words are declared once, on the rule itself (``meaning=`` and ``fix=`` of
:func:`ccmlib.engine.rules.registry.rule`); this module gives the names the callers read, built from the registry.
(It was ``ccmlib.reference.explain`` while the words were a table of their own; the reference layer cannot read the
engine's registry.)"""
from __future__ import annotations

from ccmlib.engine.rules import load_all

#: plain-language explanation and corrective action per rule id, (meaning, fix), read from the rules' declarations
EXPLAIN: dict[str, tuple[str, str]] = {r.id: (r.meaning, r.fix) for r in sorted(load_all().values(), key=lambda r: r.id)}


def meaning(rule_id: str) -> str:
    return EXPLAIN[rule_id][0]


def fix(rule_id: str) -> str:
    return EXPLAIN[rule_id][1]
