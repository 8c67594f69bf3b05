"""ccm-audit: audit workbench for Medicare Chronic Care Management (CPT 99490 family) billing.

Public API: :func:`load_practice`, :func:`audit`, :func:`write_outputs`, :func:`synth`.
"""
__version__ = "0.1.0"

from .audit import AuditResult, audit, write_outputs  # noqa: E402,F401
from .errors import InputError  # noqa: E402,F401
from .load import Practice, load_practice  # noqa: E402,F401
from .synth import generate as synth  # noqa: E402,F401
