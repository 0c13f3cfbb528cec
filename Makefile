# Two commands do all the set-up: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed
GRAPHIQL := .citygate/graphiql
GRAPHIQL_VERSION := 3.8.3
REACT_VERSION := 18.3.1
PORT ?= 4000

.PHONY: demo test lint clean browser nginx bench attacks

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Citygate needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	@echo "Installing Citygate and its dependencies into $(VENV) (once, about a minute)..."
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@echo "Installed."
	touch $(INSTALLED)

# GraphiQL's files, so that the demo's GraphiQL works offline (fetched once from the npm registry).
$(GRAPHIQL)/graphiql.min.js:
	@command -v npm >/dev/null || { echo "npm is needed once to fetch GraphiQL's files"; exit 1; }
	@echo "Fetching GraphiQL's files from the npm registry (once)..."
	mkdir -p $(GRAPHIQL) .citygate/npm
	cd .citygate/npm && npm pack --silent graphiql@$(GRAPHIQL_VERSION) react@$(REACT_VERSION) react-dom@$(REACT_VERSION) >/dev/null
	tar -xzf .citygate/npm/react-$(REACT_VERSION).tgz -O package/umd/react.production.min.js > $(GRAPHIQL)/react.production.min.js
	tar -xzf .citygate/npm/react-dom-$(REACT_VERSION).tgz -O package/umd/react-dom.production.min.js > $(GRAPHIQL)/react-dom.production.min.js
	tar -xzf .citygate/npm/graphiql-$(GRAPHIQL_VERSION).tgz -O package/graphiql.min.css > $(GRAPHIQL)/graphiql.min.css
	tar -xzf .citygate/npm/graphiql-$(GRAPHIQL_VERSION).tgz -O package/graphiql.min.js > $(GRAPHIQL)/graphiql.min.js.part
	mv $(GRAPHIQL)/graphiql.min.js.part $(GRAPHIQL)/graphiql.min.js

# The browser test drives Debian's Chromium (installed when missing and we may).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); } || \
		{ echo "the browser test needs Debian's chromium: apt-get install chromium"; exit 1; }

# The replicas test puts Debian's nginx in front of three gateways (installed when missing and we may).
nginx:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get install -y -q nginx >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q nginx >/dev/null)); } || \
		{ echo "the replicas test needs Debian's nginx: apt-get install nginx"; exit 1; }

# `make demo PORT=4001` for another port.
demo: $(INSTALLED) $(GRAPHIQL)/graphiql.min.js
	@echo "Starting the demo city on port $(PORT) (about ten seconds)..."
	$(VENV)/bin/citygate demo --port $(PORT)

# Two pytest processes (pytest-xdist), one test file at a time each: a file's tests share its module
# fixtures in one process; PostgreSQL and Redis databases are the worker's own (tests/workers.py), ports free ones.
test: $(INSTALLED) $(GRAPHIQL)/graphiql.min.js browser nginx
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

# Citygate against Hive Gateway and Apollo Gateway (bench/README.md). Needs wrk, taskset and npm.
bench: $(INSTALLED)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get install -y -q wrk >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null)); } || \
		{ echo "the benchmark drives load with wrk: apt-get install wrk"; exit 1; }
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,bench]'
	cd bench && npm install --silent --no-audit --no-fund
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

# Hostile HTTP traffic against the demo while a probe client queries it (bench/attacks.py; the
# figures are in docs/benchmarks.md). Loopback only; not run by the tests.
attacks: $(INSTALLED)
	$(VENV)/bin/python -m bench.attacks $(ATTACKS_ARGS)

# What CI enforces (`make test` runs it too): the linter, and the code in `ruff format`'s layout
# (`ruff format .` puts it there).
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info .citygate
