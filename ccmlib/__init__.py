"""ccm-audit: audit workbench for Medicare Chronic Care Management (CPT 99490 family) billing.

The package reads as its data flow: ``reference`` (code lists, fees, conditions) -> ``intake`` (files, mapping,
schemas, validation) -> ``stats`` (RAT-STATS numbers) -> ``engine`` (facts, rules, money, decisions, outputs) ->
``synth`` (synthetic practices) -> ``report`` (the quarterly report) -> ``workbench`` (chart review, training,
portfolio) -> ``cli``. Imports only point down that list (tests/test_layout.py checks it).

The public face, papermill-style: a few functions over the modules::

    import ccmlib
    practice = ccmlib.load_practice("data/demo")
    result = ccmlib.audit(practice, period="2026Q3")
    ccmlib.draw_sample(result, 50, seed="48863.78")
    ccmlib.write_outputs(result, "reports/demo")
    ccmlib.render_report("data/demo", "2026Q3", "reports/q3")
    ccmlib.generate_practice(200, "2026-01..2026-03", seed=1, out="data/synthetic")
"""
from ccmlib._version import __version__  # noqa: F401

from ccmlib.engine.pipeline import AuditResult, audit, write_outputs  # noqa: E402,F401
from ccmlib.engine.pipeline import attach_sample as draw_sample  # noqa: E402,F401
from ccmlib.errors import InputError  # noqa: E402,F401
from ccmlib.intake.load import Practice, load_practice  # noqa: E402,F401
from ccmlib.synth.generator import generate as generate_practice  # noqa: E402,F401


def render_report(*args, **kwargs):
    """Render the quarterly report (see :func:`ccmlib.report.render.render_report`); imported on first use, so that
    ``import ccmlib`` stays light for the engine alone."""
    from ccmlib.report.render import render_report as _render

    return _render(*args, **kwargs)


__all__ = ["AuditResult", "InputError", "Practice", "audit", "draw_sample", "generate_practice", "load_practice",
           "render_report", "write_outputs"]
