"""Rule functions, one per catalog ID, grouped by criterion."""
from ccmlib.engine.rules.registry import RULE_CATALOG_VERSION, RULES, Rule, catalog  # noqa: F401


def load_all() -> dict:
    from ccmlib.engine.rules import billing, careplan, consent, eligibility, revenue, time  # noqa: F401  (registration side effect)
    return RULES
