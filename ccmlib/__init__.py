"""ccm-audit: audit workbench for Medicare Chronic Care Management (CPT 99490 family) billing."""
__version__ = "0.1.0"
