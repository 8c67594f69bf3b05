# ccm-audit: `make demo` sets everything up and audits the bundled demo practice; `make test` runs all tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test clean-venv demo-data chromium lab review

setup: $(STAMP)

$(STAMP): pyproject.toml jupyter/overrides.json
	@command -v chromium >/dev/null 2>&1 || $(MAKE) --no-print-directory chromium
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ccm-audit)" >/dev/null
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

# Debian's chromium: browser tests (Playwright drives it; `playwright install` cannot download here)
chromium:
	@echo "installing Debian chromium for the browser tests"
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	 else sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi \
	 || echo "WARNING: could not install chromium (needs root or sudo); the browser tests will fail"

# JupyterLab on this machine only, no news or update checks
lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1

# the chart-review notebook as an app (Voila)
review: setup
	$(BIN)/voila notebooks/chart_review.ipynb --Voila.ip=127.0.0.1

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
