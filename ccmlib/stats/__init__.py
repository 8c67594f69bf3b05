"""Stage 2, statistics: RAT-STATS-compatible random numbers, appraisal and sample sizes (``ratstats``), sampling frames
(``frames``) and their plain-text summaries (``text``). Depends on nothing but the error type."""
