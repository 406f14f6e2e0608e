# The two commands of the README:
#   make run    start the chat on its embedded default (SQLite file salas.db, one process) at http://127.0.0.1:8000/
#   make test   install what the tests need and run every test
.PHONY: run test lint bench

run:
	scripts/setup.sh
	.venv/bin/salas serve

test:
	scripts/setup.sh --test
	.venv/bin/ruff check src tests bench examples
	.venv/bin/mypy
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check src tests bench examples
	.venv/bin/ruff format --check src tests bench examples
	.venv/bin/mypy

bench:
	scripts/setup.sh
	.venv/bin/pip install -q -e ".[bench]"
	.venv/bin/python -m bench.run
