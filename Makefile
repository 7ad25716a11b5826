.PHONY: install up test lint format bench

install:  ## create .venv and install CHIMP (CPU)
	scripts/install

up:  ## install if needed and start the whole stack (chimp up)
	scripts/up

test:  ## install test deps, lint, type-check, run every test (what CI runs)
	scripts/test

lint:
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks
	.venv/bin/mypy --strict src tests benchmarks

format:
	.venv/bin/ruff check --fix src tests benchmarks
	.venv/bin/ruff format src tests benchmarks
