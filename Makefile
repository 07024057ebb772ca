# certissuer: `make demo` installs and issues + verifies the samples; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO    = demo-out

.PHONY: install demo demo-trial test test-lowest lint lock lock-lowest bench bench-all clean

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
	@$(MAKE) --no-print-directory demo-trial
	@echo "The signed certificates are in $(CURDIR)/$(DEMO)/ (PAdES B-LTA, two signers: $(DEMO)/trial/)"

# PAdES B-LTA with two signers, offline: the trial CA's services (NOT FOR PRODUCTION) run in the
# background for the demo and stop with it; the verifier signs, the head approves, verify checks.
TRIAL = samples/certissuer-trial.toml
TRIAL_URL = http://127.0.0.1:8790
demo-trial: install
	@rm -rf $(DEMO)/trial
	@set -e; export CERTISSUER_P12_PASSPHRASE=demo CERTISSUER_LEDGER_URL=sqlite:///$(CURDIR)/$(DEMO)/trial/ledger.db; \
	$(BIN)/python -c "import socket, sys, urllib.parse as p; u = p.urlsplit('$(TRIAL_URL)'); \
	  sys.exit(socket.socket().connect_ex((u.hostname, u.port)) == 0)" \
	  || { echo "$(TRIAL_URL) is already in use (an earlier trial-services?): stop it, then run make demo again" >&2; exit 1; }; \
	$(BIN)/certissuer trial-services keys.example & pid=$$!; trap 'kill $$pid 2>/dev/null' EXIT; \
	for i in $$(seq 50); do $(BIN)/python -c "import urllib.request as u; u.urlopen('$(TRIAL_URL)/', timeout=1)" 2>/dev/null && break; sleep 0.1; done; \
	$(BIN)/certissuer --config $(TRIAL) issue samples/verification.json --out $(DEMO)/trial; \
	for pdf in $(DEMO)/trial/*.pdf; do \
	  $(BIN)/certissuer --config $(TRIAL) sign-approve "$$pdf"; \
	  $(BIN)/certissuer --config $(TRIAL) verify "$$pdf"; \
	done

# Two pytest workers (CI has two cores), one test file per worker at a time: a file's module
# fixtures (its lab, its server) are built once. Coverage is combined across the workers.
JOBS ?= 2
test: install
	$(BIN)/pytest -n $(JOBS) --dist loadfile --cov --cov-report=term:skip-covered

# The same project at the lowest versions pyproject.toml allows (requirements-lowest.lock), on the
# tests that guard what certissuer relies on in each library: patched internals, the error
# boundary, the web server, the ledger's ORM and migrations, the table readers.
LOWEST = .venv-lowest
LOWEST_TESTS = tests/test_sign_pyhanko.py tests/test_render_z3c.py tests/test_cli_exit_codes.py \
  tests/test_issue.py tests/test_verify.py tests/test_pades.py tests/test_web_abuse.py \
  tests/test_ledger.py tests/test_tables.py

$(LOWEST)/bin/certissuer: pyproject.toml requirements-lowest.lock
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install --quiet --upgrade pip
	$(LOWEST)/bin/pip install --quiet -r requirements-lowest.lock
	$(LOWEST)/bin/pip install --quiet --no-deps -e .
	touch $@

test-lowest: $(LOWEST)/bin/certissuer
	$(LOWEST)/bin/pip check
	$(LOWEST)/bin/pytest -p no:cacheprovider -q $(LOWEST_TESTS)

lint: install
	$(BIN)/ruff format --check certissuer tests bench
	$(BIN)/ruff check certissuer tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The exact versions `make` and CI install (pip constraints); refresh after changing pyproject.
lock: install
	{ echo "# certissuer's tested dependency versions: make lock writes this file from the venv."; \
	  $(BIN)/pip freeze --exclude-editable; } > requirements.lock

# The lowest versions pyproject.toml allows, resolved by uv (pip has no such resolution).
lock-lowest:
	$(PYTHON) -m venv .venv-uv && .venv-uv/bin/pip install --quiet uv
	{ echo "# The lowest versions pyproject.toml allows: make lock-lowest writes this file (uv)."; \
	  .venv-uv/bin/uv pip compile pyproject.toml --extra test --extra postgres \
	    --resolution lowest-direct --python-version 3.11 --no-header -q; } > requirements-lowest.lock

bench: install
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_issue.py

bench-all: bench
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_ledger.py
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_batch.py --sizes 1000,10000 --real 0  # ~20 min
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_batch.py --sizes 1000,10000 --tiny
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_sign.py
	$(BIN)/python bench/bench_levels.py
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_dcc.py
	CERTISSUER_P12_PASSPHRASE=demo $(BIN)/python bench/bench_report.py

clean:
	rm -rf $(DEMO) $(LOWEST) .venv-uv .pytest_cache .coverage .mypy_cache
