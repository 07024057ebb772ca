# certissuer: `make demo` installs and issues + verifies the samples; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO    = demo-out

.PHONY: install demo test lint lock bench bench-all clean

$(BIN)/certissuer: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,postgres]'
	touch $@

install: $(BIN)/certissuer

demo: install
	@rm -rf $(DEMO)
	CERTISSUER_P12_PASSPHRASE=demo CERTISSUER_LEDGER_URL=sqlite:///$(CURDIR)/$(DEMO)/ledger.db \
	  $(BIN)/certissuer --config samples/certissuer.toml issue samples/calibration.json samples/verification.json --out $(DEMO)
	@for pdf in $(DEMO)/*.pdf; do \
	  CERTISSUER_LEDGER_URL=sqlite:///$(CURDIR)/$(DEMO)/ledger.db \
	    $(BIN)/certissuer --config samples/certissuer.toml verify "$$pdf" || exit 1; \
	done
	CERTISSUER_LEDGER_URL=sqlite:///$(CURDIR)/$(DEMO)/ledger.db \
	  $(BIN)/certissuer --config samples/certissuer.toml ledger list
	@echo "The signed certificates are in $(CURDIR)/$(DEMO)/"

test: install
	$(BIN)/pytest --cov --cov-report=term:skip-covered

lint: install
	$(BIN)/ruff format --check certissuer tests bench
	$(BIN)/ruff check certissuer tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The exact versions `make` and CI install (pip constraints); refresh after changing pyproject.
lock: install
	{ echo "# certissuer's tested dependency versions: make lock writes this file from the venv."; \
	  $(BIN)/pip freeze --exclude-editable; } > requirements.lock

bench: install
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_issue.py

bench-all: bench
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_ledger.py
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_batch.py --sizes 1000,10000 --real 0  # ~20 min
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_batch.py --sizes 1000,10000 --tiny
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_sign.py
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_dcc.py
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_report.py

clean:
	rm -rf $(DEMO) .pytest_cache .coverage .mypy_cache
