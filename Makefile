# kfedge: `make run` and `make test` each create .venv when missing and install into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kfedge-installed
LOCK   := constraints/requirements.lock
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: run test lint format bench bench-peers images compile clean lock soak cluster-build cluster-up cluster-down

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

## run: the whole pipeline on this machine (kfp.local) on the built-in sample; ends with the report
run: $(STAMP)
	$(BIN)/kfedge run $(ARGS)

## test: lint + the full test suite
test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: side-by-side benchmarks -> benchmarks/results.json -> BENCHMARKS.md (Olive too when .venv-peers exists)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# The peers (Microsoft Olive) live in their own virtualenv, never in kfedge's dependencies.
# PEERS_TORCH: a CPU-only build of torch (here pip finds it in the local wheel directory; on a
# machine without one, add PyTorch's CPU index with --index-url, or plain torch pulls CUDA, GBs).
PEERS_VENV  ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.peers-installed
PEERS_TORCH ?= torch==2.13.0
BENCH_ARGS  ?=

$(PEERS_STAMP): benchmarks/peers-requirements.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q $(PEERS_TORCH)
	$(PEERS_VENV)/bin/python -m pip install -q -r benchmarks/peers-requirements.txt
	touch $(PEERS_STAMP)

## bench-peers: create .venv-peers (Olive) if missing, then `make bench` with Olive required
bench-peers: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python -m benchmarks.run --peers $(PEERS_VENV) --require-peers $(BENCH_ARGS)

## soak: reliability figures (a soak at concurrency 32, 100,000+ fuzzed requests, S3 faults,
## credentials, throughput under concurrency) -> benchmarks/reliability.json -> RELIABILITY.md.
## SOAK_SECONDS=600 (the real run, about 45 minutes); fewer seconds = a short run, marked so
SOAK_SECONDS ?= 600
SOAK_STAMP  := $(VENV)/.kfedge-soak-installed
$(SOAK_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[soak]"
	touch $(SOAK_STAMP)

soak: $(SOAK_STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m benchmarks.reliability

## images: build kfedge's images into the local Docker engine, no registry needed (a Debian base
## made by mmdebstrap, the legacy builder; images of an unchanged context are reused). With
## REGISTRY=ghcr.io/you [PLATFORMS=linux/amd64,linux/arm64]: the multi-arch buildx build and push
## (a machine with buildx and the registry)
REGISTRY  ?=
PLATFORMS ?=
images: $(STAMP)
ifeq ($(REGISTRY),)
	$(BIN)/python -m kfedge.images local
else
	$(BIN)/python -m kfedge.images build --registry $(REGISTRY) $(if $(PLATFORMS),--platforms $(PLATFORMS)) --push --run
endif

## compile: regenerate the checked-in component and pipeline YAML; with REGISTRY=..., write
## YAML whose images come from that registry into build/yaml/ (the checked-in YAML is kept)
compile: $(STAMP)
	$(BIN)/kfedge compile $(if $(REGISTRY),--registry $(REGISTRY))

## lock: refresh the pinned constraints from the current venv
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^kfedge' > $(LOCK)

clean:
	rm -rf $(VENV) local_outputs .pytest_cache build dist *.egg-info

## cluster-build: build the real control plane the tests run (etcd, Kubernetes, KServe's controller, kwok) from the Go module proxy, cached in ~/.cache/kfedge
cluster-build: $(STAMP)
	$(BIN)/python -m controlplane build

## cluster-up / cluster-down: start / stop that control plane on 127.0.0.1 (KUBECONFIG=.cluster/admin.kubeconfig)
cluster-up: $(STAMP)
	$(BIN)/python -m controlplane up --dir .cluster

cluster-down: $(STAMP)
	$(BIN)/python -m controlplane down --dir .cluster
