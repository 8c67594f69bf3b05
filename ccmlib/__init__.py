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
from ccmlib.errors import InputError  # noqa: F401

#: public name -> (module, attribute), imported on first use (PEP 562): `ccm-audit --help`, `sample` or `appraise`
#: need no pandas, and `import ccmlib` stays light
_LAZY = {"AuditResult": ("ccmlib.engine.pipeline", "AuditResult"), "audit": ("ccmlib.engine.pipeline", "audit"),
         "write_outputs": ("ccmlib.engine.pipeline", "write_outputs"), "draw_sample": ("ccmlib.engine.pipeline", "attach_sample"),
         "Practice": ("ccmlib.intake.load", "Practice"), "load_practice": ("ccmlib.intake.load", "load_practice"),
         "generate_practice": ("ccmlib.synth.generator", "generate"), "render_report": ("ccmlib.report.render", "render_report")}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ccmlib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["AuditResult", "InputError", "Practice", "audit", "draw_sample", "generate_practice", "load_practice",
           "render_report", "write_outputs"]
