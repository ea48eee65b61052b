# Covernet: `make demo` starts the demo, `make test` runs every check.
.PHONY: demo test lint format setup bench

VENV := .venv/bin

setup:
	@scripts/bootstrap.sh

demo: setup
	@mkdir -p var
	COVERNET_STAFF_MFA=optional $(VENV)/covernet demo --serve

lint:
	$(VENV)/ruff check src tests bench migrations
	$(VENV)/ruff format --check src tests bench migrations
	$(VENV)/mypy

test:
	@scripts/bootstrap.sh --browser
	$(MAKE) --no-print-directory lint
	$(VENV)/pytest -n 2 --dist loadfile -q

format:
	$(VENV)/ruff format src tests bench migrations
	$(VENV)/ruff check --fix src tests bench migrations

bench: setup
	$(VENV)/python bench/quote.py
	$(VENV)/python bench/issue.py
	$(VENV)/python bench/buy.py
	$(VENV)/python bench/red_envelope.py
