# make run  - set everything up and serve on http://127.0.0.1:8056 (SQLite)
# make test - set everything up, lint, type-check and run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest test-js test-browser chromium demo-assets examples clean

# JavaScript: the official-client conformance suite and the live demo's
# vendored Socket.IO client, each pinned by its own package-lock.json.
JS_TESTS := tests/js
DEMO := examples/live-feed
# The collaborative board (SPEC §13): plain files too, with the same vendored client.
BOARD := examples/collab-board
# The React and Vue examples: Vite projects built into their dist/, which
# livebase serves at /examples/<name>/ while DEMO_ENABLED.
REACT := examples/react-live-feed
VUE := examples/vue-live-feed
BROWSER_TESTS := tests/browser
CHROMIUM ?= /usr/bin/chromium
NPM_CI := npm ci --no-audit --no-fund --loglevel=error

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	@command -v npm >/dev/null && $(MAKE) -s --no-print-directory demo-assets || \
		echo "note: no Socket.IO client vendored for /examples/live-feed/ (needs npm: make demo-assets)"
	$(BIN)/livebase serve

# lint-imports checks the contracts under [tool.importlinter] in pyproject.toml;
# tools/ holds its custom contract type (acyclic), hence PYTHONPATH.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples tools
	$(BIN)/ruff format --check src tests examples tools
	PYTHONPATH=tools $(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy src tools

# Most tests wait on real servers rather than compute: four workers on two
# cores take the suite from ~18 to ~11 minutes (PYTEST_WORKERS=0: one process).
PYTEST_WORKERS ?= 4
pytest: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(PYTEST_WORKERS)

# npm ci runs again only when node_modules is missing or the lockfile changed.
$(JS_TESTS)/node_modules/.package-lock.json: $(JS_TESTS)/package-lock.json $(JS_TESTS)/package.json
	cd $(JS_TESTS) && $(NPM_CI)
	touch $@

$(DEMO)/node_modules/.package-lock.json: $(DEMO)/package-lock.json $(DEMO)/package.json
	cd $(DEMO) && $(NPM_CI)
	touch $@

# The demo page's socket.io.min.js, copied from the pinned npm package (never a CDN).
$(DEMO)/vendor/socket.io.min.js: $(DEMO)/node_modules/.package-lock.json
	mkdir -p $(@D)
	cp $(DEMO)/node_modules/socket.io-client/dist/socket.io.min.js $@

# The board uses the same pinned package: one lockfile, one version for both pages.
$(BOARD)/vendor/socket.io.min.js: $(DEMO)/node_modules/.package-lock.json
	mkdir -p $(@D)
	cp $(DEMO)/node_modules/socket.io-client/dist/socket.io.min.js $@

# The inspector at /admin/ (an operator tool, not an example) uses the same pinned client.
INSPECTOR := src/livebase/api/static/inspector
$(INSPECTOR)/vendor/socket.io.min.js: $(DEMO)/node_modules/.package-lock.json
	mkdir -p $(@D)
	cp $(DEMO)/node_modules/socket.io-client/dist/socket.io.min.js $@

demo-assets: $(DEMO)/vendor/socket.io.min.js $(BOARD)/vendor/socket.io.min.js \
		$(INSPECTOR)/vendor/socket.io.min.js

$(REACT)/node_modules/.package-lock.json: $(REACT)/package-lock.json $(REACT)/package.json
	cd $(REACT) && $(NPM_CI)
	touch $@

$(VUE)/node_modules/.package-lock.json: $(VUE)/package-lock.json $(VUE)/package.json
	cd $(VUE) && $(NPM_CI)
	touch $@

# vite build runs again only when a source, the config or the lockfile changed.
$(REACT)/dist/index.html: $(REACT)/node_modules/.package-lock.json $(REACT)/index.html \
		$(REACT)/vite.config.js $(wildcard $(REACT)/src/*)
	cd $(REACT) && npm run --silent build -- --logLevel warn

$(VUE)/dist/index.html: $(VUE)/node_modules/.package-lock.json $(VUE)/index.html \
		$(VUE)/vite.config.js $(wildcard $(VUE)/src/*)
	cd $(VUE) && npm run --silent build -- --logLevel warn

examples: $(REACT)/dist/index.html $(VUE)/dist/index.html

test-js: $(VENV)/.installed $(JS_TESTS)/node_modules/.package-lock.json demo-assets
	node --test $(JS_TESTS)/

# Chromium for the browser tests: Debian's package, installed when missing and we
# may (root with apt-get); otherwise a clear error. The tests are never skipped.
chromium:
	@test -x $(CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the browser tests"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq chromium >/dev/null 2>&1 || \
				{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
		fi; }
	@test -x $(CHROMIUM) || { echo "error: the browser tests need Chromium at $(CHROMIUM):" \
		"install Debian's chromium (apt-get install chromium, as root) or set CHROMIUM=/path/to/chromium" >&2; \
		exit 1; }

$(BROWSER_TESTS)/node_modules/.package-lock.json: $(BROWSER_TESTS)/package-lock.json $(BROWSER_TESTS)/package.json
	cd $(BROWSER_TESTS) && $(NPM_CI)
	touch $@

# The demo page and both example builds in headless Chromium (playwright-core);
# screenshots in build/screenshots/.
test-browser: $(VENV)/.installed $(BROWSER_TESTS)/node_modules/.package-lock.json demo-assets examples chromium
	CHROMIUM=$(CHROMIUM) node --test $(BROWSER_TESTS)/

test: lint typecheck pytest test-js test-browser

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
	rm -rf $(JS_TESTS)/node_modules $(DEMO)/node_modules $(DEMO)/vendor $(BOARD)/vendor
	rm -rf $(REACT)/node_modules $(REACT)/dist $(VUE)/node_modules $(VUE)/dist $(BROWSER_TESTS)/node_modules
