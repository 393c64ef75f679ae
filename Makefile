# mailbolt: every target creates the virtual environment it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint serve clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	MAIL_TRANSPORT=sandbox $(BIN)/python -m bot send --template welcome \
		--recipients data/samples/welcome.csv --skip-invalid \
		--var start_url=https://mailbolt.example/start

# Most tests wait on loopback servers and subprocesses, not the CPU: four
# workers keep both cores busy. `pytest tests/test_x.py` alone runs serially.
# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: otherwise every
# worker rewrites the assertions of every test module again (~2.5 s of CPU each).
TEST_WORKERS ?= 4

# The PostgreSQL tests start their own server from the machine's PostgreSQL
# programs: .ci/ensure-postgres installs them when it may, else says how.
test: $(STAMP)
	@.ci/ensure-postgres
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

bench: $(STAMP)
	$(BIN)/python bench/preflight.py
	@for b in bench/throughput.py bench/two_accounts.py bench/workers.py bench/send_loop_cost.py bench/slack_latency.py bench/startup.py; do \
		if [ -f $$b ]; then $(BIN)/python $$b || exit 1; fi; done

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/mypy

serve: $(STAMP)
	$(BIN)/python -m bot serve

clean:
	rm -rf $(VENV) data/outbox data/sendmail.db*
