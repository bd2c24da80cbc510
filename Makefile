# chaoskit: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
LAB_RUNTIME ?= processes

.PHONY: setup setup-kubernetes image demo test test-long unit integration bench gate mutants lint lint-only schema clean

setup: $(STAMP)
	@.ci/install-system.sh

# The real Kubernetes control plane the tests use (built once, cached in ~/.cache/chaoskit).
setup-kubernetes: $(STAMP)
	@.ci/install-system.sh --kubernetes

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing chaoskit and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/pip install -q --upgrade pip > $(VENV)/install.log 2>&1 && \
	  $(BIN)/pip install -q -e '.[dev]' >> $(VENV)/install.log 2>&1 || \
	  { cat $(VENV)/install.log; echo "setup: pip install failed (log above)" >&2; exit 1; }
	@touch $(STAMP)

demo: setup
	@$(BIN)/python -m chaoskit.demo

# The payment stack's container image, built offline (mmdebstrap base + wheels; cached).
image: setup
	@echo "image: $$(k8s/image/build.sh | tail -1)"

test: setup-kubernetes image
	@$(MAKE) --no-print-directory lint-only
	@set +e; $(BIN)/pytest tests/unit tests/integration -p no:cacheprovider -m "not long" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# The long tier (tens of minutes): every gate experiment on container nodes, the healthy stack
# against the whole gate set, every fast mutant, a load worker's memory over 90 s of captures.
test-long: setup-kubernetes image
	@set +e; $(BIN)/pytest tests/integration -p no:cacheprovider -m long $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

unit: setup-kubernetes
	@$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

bench: setup
	@$(BIN)/pytest tests/bench -s -q -p no:cacheprovider -o python_files='bench_*.py' $(PYTEST_ARGS)

# LAB_RUNTIME=containers runs the gate set against container nodes (after `make image`).
gate: setup
	@$(BIN)/python -m chaoskit.demo --gate --runtime $(LAB_RUNTIME)

# Mutation testing: the healthy stack, then every deliberate defect of the reference stack
# (chaoskit/stack/defects.py), against the gate set; prints the score and what caught each.
MUTANTS_ARGS ?=
mutants: setup
	@$(BIN)/python -m tests.mutants $(MUTANTS_ARGS)

lint: setup lint-only

lint-only:
	@echo "lint: ruff check chaoskit tests; mypy chaoskit"
	@$(BIN)/ruff check -q chaoskit tests
	@$(BIN)/mypy chaoskit

schema: setup
	@$(BIN)/chaoskit schema -o chaoskit.schema.json

clean:
	rm -rf $(VENV) runs .pytest_cache
