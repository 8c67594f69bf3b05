"""Stage 0, reference data: code lists and time rules (``codes``), the fee schedule, chronic-condition map, ICD-10-CM
validity and dated code facts (``data``), with their sources in ``SOURCES.md``."""
