"""Opportunities (REV-01). Computed by the engine after all other rules, because it needs their errors."""
from __future__ import annotations

from ccmlib.engine.rules.registry import RULES, Rule

RULES["REV-01"] = Rule(
    "REV-01", "Qualifying minutes support codes or units that were not billed", "info", "other",
    "CPT 99490/99439 descriptors; CMS MLN909188", ("time_entries", "claims"), None)
