"""Stage 1, intake: find a practice's files (CSV, Parquet, one Excel workbook), apply ``mapping.yml``, type and validate
every row against the declared schemas, and collect every rejected or flagged row in a data-quality table."""
