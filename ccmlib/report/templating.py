"""One rendering route for every document ccm-audit hands out (worklist, portfolio, handout; the report goes through
nbconvert with ``templates/report/``): Jinja templates under ``templates/``, one escaping policy and one print
stylesheet. Python builds data (dicts, frames); templates build HTML.

Escaping policy: autoescape is on for every template, so every value from data is HTML-escaped where it is placed.
Only two things are trusted markup: tables made by :func:`ccmlib.report.show.table_html` (which escapes every header
and cell itself) through the ``table`` filter, and images we encoded ourselves through the ``png`` filter. Nothing
else may be marked safe. An undefined name in a template is an error, never an empty string.
"""
from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path

from markupsafe import Markup

#: the templates folder: the repository's top-level ``templates/`` (installed copies reach it through
#: ``ccmlib/resources/templates``)
TEMPLATES = Path(__file__).resolve().parents[1] / "resources" / "templates"


@lru_cache(maxsize=1)
def environment():
    import jinja2

    from ccmlib.report.show import money_text, percent_text, plural, table_html

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["table"] = lambda df, **kw: Markup(table_html(df, **kw))
    env.filters["money"] = money_text
    env.filters["pct"] = percent_text
    env.filters["plural"] = plural
    env.filters["png"] = lambda data: Markup(f'<img alt="" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}"/>')
    return env


def render(name: str, **context) -> str:
    """Render ``templates/<name>`` with ``context``; the common print stylesheet is available as ``print_css``."""
    env = environment()
    css = (TEMPLATES / "common" / "print.css").read_text(encoding="utf-8")
    return env.get_template(name).render(print_css=Markup(css), **context)
