# The two commands of the README: `make lab` and `make test`. Both set up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extra arguments for `jupyter lab`, e.g. make lab LAB_ARGS="--no-browser --port 8890".
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, Codespaces) unless told it may.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test lint setup labs validate bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, this is " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --editable '.[test]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with everything the course needs

lab: setup  ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab $(ROOT_ARGS) --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb $(LAB_ARGS)

# Two pytest workers, a test module each at a time (its module-scoped servers and
# browsers stay in one process): most tests wait on sockets and pacing, so the
# suite takes about half as long on two cores (11 instead of 20 minutes here).
test: setup lint  ## lint and type-check (seconds), then every test: package, checks, notebooks, grader, browser
	$(PY) -m pytest -n 2 --dist loadfile

lint: setup  ## ruff (lint and format check) and mypy (strict on streamcourse/); configured in pyproject.toml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

labs: setup  ## regenerate labs/ from solutions/
	$(PY) -m streamcourse build

validate: setup  ## every check fails on the blank lab, passes on the solution, rejects each known wrong answer
	$(PY) -m streamcourse validate

bench: setup  ## the benchmarks (not part of `make test`)
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache grades
