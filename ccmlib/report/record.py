"""Record named values in a notebook's outputs and read them back (a small, maintained stand-in for scrapbook)."""
from __future__ import annotations

import json

MIME = "application/vnd.ccm-audit.record+json"


def record(name: str, value) -> None:
    """Display ``value`` under ``name`` as a custom MIME bundle (invisible in HTML, readable with nbformat)."""
    from IPython.display import display

    display({MIME: {"name": name, "value": json.loads(json.dumps(value, default=str))}}, raw=True)


def read_records(nb) -> dict:
    """All recorded values of an executed notebook (nbformat node or path)."""
    if not hasattr(nb, "cells"):
        import nbformat
        nb = nbformat.read(str(nb), as_version=4)
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if MIME in data:
                rec = data[MIME]
                out[rec["name"]] = rec["value"]
    return out
