# The two commands a newcomer needs:  `make local`  and  `make test`.
# Each installs what it needs and no more, quietly: one line per set-up step, and the step's
# output only if it fails (all of it is kept in build/setup.log; VERBOSE=1 shows it live).
VENV ?= .venv
PY := $(VENV)/bin/python
WHEELHOUSE := build/wheelhouse
SETUP_LOG := build/setup.log
QUIETLY := scripts/quietly $(SETUP_LOG)
PYTEST_ARGS ?=
# Two pytest-xdist workers: the tests mostly wait on sockets and processes, so two nearly halve
# the suite's time even on two cores. `--dist loadfile` keeps each test file on one worker, so
# a module-scoped fixture (one `make dist`, one converged cluster) is set up once, not once per
# worker. Each worker's agents get their own loopback range (tests/helpers/devcluster.py).
# PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 2

.PHONY: deps system-deps local-system-deps local devcluster test lint bench clean dist universe

# The Python environment itself, with the build tools the wheel below needs.
$(VENV)/.created:
	@$(QUIETLY) "build tools (gcc, Python headers, venv)" scripts/system-deps.sh build
	@$(QUIETLY) "Python environment $(VENV)" python3 -m venv $(VENV)
	@$(QUIETLY) "pip, setuptools, wheel" $(PY) -m pip install -q --upgrade pip setuptools wheel
	@touch $@

# The http-parser wheel (see README), a target of its own so that a deleted build/ is rebuilt
# (and the environment reinstalled from it) even when the environment is newer.
$(WHEELHOUSE)/.built: scripts/build_http_parser_wheel.py $(VENV)/.created
	@$(QUIETLY) "http-parser wheel (see README)" $(PY) scripts/build_http_parser_wheel.py $(WHEELHOUSE)
	@touch $@

# The scheduler and its Python dependencies (what `local`, `devcluster` and `bench` run).
$(VENV)/.installed: pyproject.toml $(WHEELHOUSE)/.built
	@$(QUIETLY) "calico-dcos and its dependencies" \
		$(PY) -m pip install -q --find-links $(WHEELHOUSE) --only-binary http-parser -e .
	@touch $@

# Plus the test and release tools: the developer's environment.
$(VENV)/.installed-test: $(VENV)/.installed
	@$(QUIETLY) "test and release tools (pytest, pytest-xdist, ruff, selenium, pyte, shiv, pystache)" \
		$(PY) -m pip install -q --find-links $(WHEELHOUSE) --only-binary http-parser -e '.[test]'
	@touch $@

deps: $(VENV)/.installed-test

local-system-deps:
	@$(QUIETLY) "Debian packages for local (etcd)" scripts/system-deps.sh local

system-deps:
	@$(QUIETLY) "Debian packages for the tests (etcd, ZooKeeper, Java, Chromium, Docker)" \
		scripts/system-deps.sh test

## Set up what `local` needs and run it on the embedded cluster.
local: $(VENV)/.installed local-system-deps
	$(VENV)/bin/calico-dcos local --agents 3 --public-agents 1

devcluster: $(VENV)/.installed
	$(VENV)/bin/calico-dcos devcluster --agents 3 --public-agents 1

lint: deps
	$(VENV)/bin/ruff check calico_dcos tests scripts
	$(VENV)/bin/ruff format --check calico_dcos tests scripts

## Set everything up and run the whole test suite.
test: deps system-deps lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(VENV)/bin/calico-dcos bench --agents 100,1000,5000

## The release: dist/calico-dcos-<version>-sha256-<hex>.pyz and the icons, with
## universe/resource.json pointing at them under RELEASE_URL (README: "Making a release").
## One line when it works; shiv's and pip's output is in build/dist.log (shown on failure).
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
RELEASE_URL ?= $(shell sed -n 's/^Source = "\(.*\)"/\1/p' pyproject.toml)/releases/download/v$(VERSION)
dist: deps
	$(PY) -m scripts.dist --out dist --release-url $(RELEASE_URL)

## Regenerate universe/config.json, the post-install notes and marathon.json.
universe: deps
	$(PY) -m scripts.universe

clean:
	rm -rf $(VENV) build dist *.egg-info
