"""Stage 3, the audit engine: periods, shared facts, the rule registry and its rules, money, auditor decisions, and the
pipeline that turns a loaded practice into the data contract's tables (``pipeline.audit``) and writes a run folder
safely (``outputs``)."""
