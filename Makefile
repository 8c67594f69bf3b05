# ccm-audit: `make demo` sets everything up and audits the bundled demo practice; `make test` runs all tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test clean-venv demo-data

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ccm-audit)" >/dev/null
	touch $(STAMP)

demo: setup
	$(BIN)/ccm-audit check data/demo --out reports/demo --period 2026Q3
	@echo "Findings written to reports/demo/ (findings.csv, claim_lines.csv, patient_months.csv, data_quality.csv, run.json)"

test: setup
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)

DEMO_ARGS := --patients 120 --months 2026-01..2026-09 --seed 2026

demo-data: setup
	rm -rf data/demo
	$(BIN)/ccm-audit synth $(DEMO_ARGS) --out data/demo
