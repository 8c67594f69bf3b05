"""Test helpers: the library's example charts (kept in one place, ccmlib.examples)."""
from ccmlib.synth.examples import NPI, OTHER_NPI, chart, claim, entry, write  # noqa: F401
