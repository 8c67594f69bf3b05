"""The interactive pre-bill worklist of ``notebooks/monthly_prebill.ipynb``: a status filter, a checkbox that shows
patient ids (pseudonymous keys until asked), and the worklist table (escaped static HTML from :func:`table_html`)."""
from __future__ import annotations

import pandas as pd

from ccmlib.engine.prebill import STATUS_ORDER, Prebill
from ccmlib.report.privacy import ephemeral_salt, patient_keys
from ccmlib.report.show import table_html

COLUMNS = ["patient", "status", "action", "billing_npi", "codes_ready", "codes_billed", "billed_verdict", "qualifying_minutes",
           "excluded_minutes", "excluded_because", "minutes_needed", "days_left", "warnings", "dollars_at_stake"]


def worklist_view(pb: Prebill, status: str = "all", show_identifiers: bool = False, salt: bytes | None = None) -> pd.DataFrame:
    """The worklist rows of one status (or all), patients under keys unless ``show_identifiers``."""
    w = pb.worklist if status == "all" else pb.worklist[pb.worklist["status"] == status]
    who = w["patient_id"] if show_identifiers else patient_keys(w["patient_id"], salt or ephemeral_salt(), "")
    return w.assign(patient=who.to_numpy())[COLUMNS].reset_index(drop=True)


def worklist_app(pb: Prebill, show_identifiers: bool = False):
    """A status dropdown and an ids checkbox above the table; returns the widget box (displayed by the notebook)."""
    import ipywidgets as widgets
    from IPython.display import HTML, display

    salt = ephemeral_salt()  # keys stable while this notebook runs, meaningless after it
    present = [s for s in STATUS_ORDER if s in set(pb.worklist["status"])]
    status = widgets.Dropdown(options=["all", *present], value="all", description="Status", layout=widgets.Layout(width="280px"))
    ids = widgets.Checkbox(value=bool(show_identifiers), description="Show patient ids (PHI)", indent=False)
    out = widgets.Output()

    def draw(*_):
        out.clear_output(wait=True)
        with out:
            display(HTML(table_html(worklist_view(pb, status.value, ids.value, salt), money=["dollars_at_stake"])))

    status.observe(draw, names="value")
    ids.observe(draw, names="value")
    draw()
    box = widgets.VBox([widgets.HBox([status, ids]), out])
    display(box)
