# The two commands a newcomer needs:  `make local`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
WHEELHOUSE := build/wheelhouse
PYTEST_ARGS ?=

.PHONY: deps system-deps local devcluster test lint bench clean dist universe

$(VENV)/.installed: pyproject.toml scripts/build_http_parser_wheel.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) scripts/build_http_parser_wheel.py $(WHEELHOUSE)
	$(PY) -m pip install -q --find-links $(WHEELHOUSE) --only-binary http-parser -e '.[test]'
	touch $@

deps: $(VENV)/.installed

system-deps:
	scripts/system-deps.sh --with-browser

## Set everything up and run the main job on the embedded default.
local: deps system-deps
	$(VENV)/bin/calico-dcos local --agents 3 --public-agents 1

devcluster: deps
	$(VENV)/bin/calico-dcos devcluster --agents 3 --public-agents 1

lint: deps
	$(VENV)/bin/ruff check calico_dcos tests scripts
	$(VENV)/bin/ruff format --check calico_dcos tests scripts

## Set everything up and run the whole test suite.
test: deps system-deps lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: deps
	$(VENV)/bin/calico-dcos bench --agents 100,1000,5000

## The release: dist/calico-dcos-<version>-sha256-<hex>.pyz and the icons, with
## universe/resource.json pointing at them under RELEASE_URL (README: "Making a release").
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
RELEASE_URL ?= $(shell sed -n 's/^Source = "\(.*\)"/\1/p' pyproject.toml)/releases/download/v$(VERSION)
dist: deps
	$(PY) -m scripts.dist --out dist --release-url $(RELEASE_URL)

## Regenerate universe/config.json and marathon.json from the options schema and the template.
universe: deps
	$(PY) -m scripts.universe

clean:
	rm -rf $(VENV) build dist *.egg-info
