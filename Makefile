# The two commands of the README:
#   make run    start the chat on its embedded default (SQLite file salas.db, one process) at http://127.0.0.1:8000/
#   make test   install what the tests need, lint, build the documentation site and run every
#               test (the integration suite against both the Node.js reference server and
#               salas, native and through ASGI under uvicorn: SALAS_TEST_TARGETS)
#   make docs   build the documentation site into site/ (MkDocs, warnings are errors)
.PHONY: run test lint docs docs-build bench

run:
	scripts/setup.sh
	.venv/bin/salas serve

test:
	scripts/setup.sh --test
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory docs-build
	SALAS_TEST_TARGETS=$${SALAS_TEST_TARGETS:-node,salas,asgi} .venv/bin/python -m pytest

lint:
	.venv/bin/ruff check src tests bench examples
	.venv/bin/ruff format --check src tests bench examples
	.venv/bin/mypy

docs:
	scripts/setup.sh --test
	$(MAKE) --no-print-directory docs-build

docs-build:
	.venv/bin/mkdocs build --strict

bench:
	scripts/setup.sh
	.venv/bin/pip install -q -e ".[bench]"
	.venv/bin/python -m bench.run
