# kstream: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev,notebooks

.DEFAULT_GOAL := help
.PHONY: help venv run stream lab lint test bench soak broker-start broker-stop broker-status clean

help: ## list the targets with a line on each
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/kstream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $@

venv: $(BIN)/kstream ## create .venv with kstream installed (editable) and its test tools

run: venv ## the main job: notebooks train -> stream -> report via papermill (local broker, models in models/); prints the report path
	$(BIN)/kstream sweep

stream: venv ## the same job without notebooks: train if missing, stream the test split, print a summary
	$(BIN)/kstream run

# Jupyter refuses to run as root without --allow-root (the usual case in a container); LAB_ARGS adds
# options of your own, e.g. make lab LAB_ARGS="--port=8890 --no-browser"
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
LAB_ARGS ?=

lab: venv ## open JupyterLab on notebooks/ with the project's environment as the kernel (as root too)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ROOT) $(LAB_ARGS)

lint: venv ## ruff (style, imports, likely bugs) and mypy (types, both Kafka backends against their protocols)
	$(BIN)/ruff check kstream tests benchmarks
	$(BIN)/mypy

test: lint ## lint, then run the tests (doctests, unit, and integration against a real Kafka broker)
	$(BIN)/kstream broker provision
	$(BIN)/python -m pytest --durations=25

BENCH_ARGS ?= --mongo --json runs/bench/bench.json --figure runs/bench/performance.png

bench: venv ## one table per client backend: per-record loop, raw consume, decode, predict, detector (1 and 2 processes), latency at 500/1000/5000 rec/s, store write rates
	$(BIN)/python benchmarks/bench_detector.py $(BENCH_ARGS)

HOURS ?= 2
SOAK_ARGS ?=

soak: venv ## HOURS hours (default 2) at 1,000 rec/s into a detector with drift and alerts on: memory, descriptors, threads, latency and store size each minute, slopes per million records (runs/soak-<time>/; SOAK_ARGS="--client confluent")
	$(BIN)/python benchmarks/soak.py --hours $(HOURS) $(SOAK_ARGS)

broker-start: venv ## start a long-lived local Kafka broker
	$(BIN)/kstream broker start

broker-stop: venv ## stop the local Kafka broker
	$(BIN)/kstream broker stop

broker-status: venv ## show the local Kafka broker
	$(BIN)/kstream broker status

clean: ## remove the virtual environment, caches and runs (keeps models and Kafka's jars)
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache *.egg-info
