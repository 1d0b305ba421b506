# Commands for a fresh machine (Python 3.10+ with venv):
#   make demo   set up, then run the example DAG end to end (SQLite metadata DB, local output folder)
#   make test   set up (JupyterLab side included), then run ruff, mypy, import-linter, the docs build, the
#               JupyterLab extension's unit tests and the whole test suite
#   make docs   set up, then build the documentation site into site/ (open site/index.html)
#   make ui     set up, then the Airflow UI on the demo's home (127.0.0.1 only, prints URL and login)
VENV ?= .venv
PY := $(VENV)/bin/python
AIRFLOW_VERSION ?= 3.3.2
DEMO_HOME ?= $(CURDIR)/airflow-home
DEMO_ENV := AIRFLOW_HOME=$(DEMO_HOME) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/example_dags AIRFLOW__CORE__LOAD_EXAMPLES=False
UI_PORT ?= 8080

.PHONY: setup gateway jupyter demo ui test lint docs bench bench-smoke clean setup-min test-min

setup: $(VENV)/.installed

# constraints.txt pins a known-good set (pip freeze of a working environment): without it pip's resolver can
# backtrack for many minutes between botocore, aiobotocore, moto and the Airflow providers.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,bench,docs]" "apache-airflow==$(AIRFLOW_VERSION)" -c constraints.txt
	$(PY) -m bash_kernel.install --sys-prefix > /dev/null  # the bash kernelspec, inside the venv
	touch $@

# The lowest Airflow release pyproject.toml admits, in a virtualenv of its own: constraints-min.txt pins what was
# tested with it (update both together). Only the libraries the tests below need, not the whole [test] extra, and
# wtforms, which Airflow 3.1 needs to read a hook's connection-form settings (a deployment has it with FAB).
AIRFLOW_MIN_VERSION ?= 3.1.1
MIN_VENV ?= .venv-min
setup-min: $(MIN_VENV)/.installed

$(MIN_VENV)/.installed: pyproject.toml constraints-min.txt
	test -x $(MIN_VENV)/bin/python || python3 -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q --upgrade pip
	$(MIN_VENV)/bin/python -m pip install -q -e . "apache-airflow==$(AIRFLOW_MIN_VERSION)" \
		apache-airflow-providers-openlineage wtforms pytest pytest-timeout "moto[server]" -c constraints-min.txt
	touch $@

# What must hold on every supported Airflow, run on the lowest one (`make test` runs it after the whole suite on
# $(AIRFLOW_VERSION)): the provider's registration, the viewer's API and its authorization, secret parameters.
# Starlette 0.47's TestClient (Airflow 3.1.1's) hands a streamed response over in one piece, so the test that counts
# the download's chunks runs on the latest release only.
MIN_TESTS ?= tests/test_provider.py tests/viewer/test_viewer_api.py tests/dag/test_secrets.py \
	$(wildcard tests/viewer/test_viewer_hostile.py) \
	--deselect tests/viewer/test_viewer_hostile.py::test_a_300_mb_notebook_is_offered_as_a_download_that_streams
test-min: setup-min
	$(MIN_VENV)/bin/python -m pytest $(MIN_TESTS)

# A Jupyter Enterprise Gateway in a virtualenv of its own, for the remote-kernel tests (tests/gateway): started and
# stopped by the tests on 127.0.0.1, as a gateway host would run it, apart from the worker's environment.
GATEWAY_VENV ?= .venv-gateway
gateway: $(GATEWAY_VENV)/.installed

$(GATEWAY_VENV)/.installed: constraints-gateway.txt
	test -x $(GATEWAY_VENV)/bin/python || python3 -m venv $(GATEWAY_VENV)
	$(GATEWAY_VENV)/bin/python -m pip install -q jupyter_enterprise_gateway==3.3.0 ipykernel -c constraints-gateway.txt
	touch $@

# JupyterLab with this provider's server extension (airflow_notebook_provider/jupyter/, the [jupyter] extra), in a
# virtualenv of its own as a JupyterLab image would be: never a worker's environment (docs/jupyterlab.md says why).
# constraints-jupyter.txt pins what constraints.txt lacks (pip freeze of a working one). tests/jupyter start it.
JUPYTER_VENV ?= .venv-jupyter
jupyter: $(JUPYTER_VENV)/.installed labextension

$(JUPYTER_VENV)/.installed: pyproject.toml constraints.txt constraints-jupyter.txt
	test -x $(JUPYTER_VENV)/bin/python || python3 -m venv $(JUPYTER_VENV)
	$(JUPYTER_VENV)/bin/python -m pip install -q --upgrade pip
	$(JUPYTER_VENV)/bin/python -m pip install -q -e ".[jupyter]" "apache-airflow==$(AIRFLOW_VERSION)" \
		-c constraints.txt -c constraints-jupyter.txt
	mkdir -p $(JUPYTER_VENV)/share/jupyter/labextensions $(JUPYTER_VENV)/etc/jupyter/jupyter_server_config.d
	ln -sfn $(CURDIR)/$(LABEXT_OUT) $(JUPYTER_VENV)/share/jupyter/labextensions/airflow-notebook-provider
	cp jupyter-config/airflow_notebook_provider.json $(JUPYTER_VENV)/etc/jupyter/jupyter_server_config.d/
	touch $@

# The JupyterLab extension (labextension/, TypeScript) built with @jupyterlab/builder into $(LABEXT_OUT), which the
# wheel ships prebuilt (pyproject.toml: data-files): users need no Node. Needs Node 18+ and npm
# (Debian's nodejs); `npm ci` installs package-lock.json's set. test-labextension: its jest unit tests. An editable
# install gets no data files: the jupyter target links $(LABEXT_OUT) where JupyterLab finds prebuilt extensions and
# enables the server extension, as installing the wheel does.
LABEXT_OUT := airflow_notebook_provider/jupyter/labextension
LABEXT_SRC := $(wildcard labextension/src/*.ts labextension/style/*) labextension/package.json labextension/install.json \
	labextension/tsconfig.json
.PHONY: labextension test-labextension wheel
labextension: $(LABEXT_OUT)/package.json

labextension/node_modules/.installed: labextension/package-lock.json
	cd labextension && npm ci --no-audit --no-fund
	touch $@

$(LABEXT_OUT)/package.json: labextension/node_modules/.installed $(LABEXT_SRC)
	cd labextension && npm run build

test-labextension: labextension/node_modules/.installed
	cd labextension && npm test

# A wheel with the prebuilt frontend in dist/: `pip install "dist/<wheel>[jupyter]"` gives JupyterLab both extensions.
wheel: labextension setup
	$(PY) -m pip wheel -q --no-deps -w dist .

demo: setup
	$(DEMO_ENV) $(VENV)/bin/airflow db migrate > /dev/null
	$(DEMO_ENV) $(VENV)/bin/airflow dags test example_notebook_daily_report
	@echo "Output notebooks:" && find $(DEMO_HOME)/notebook_outputs -name '*.ipynb' -newer $(VENV)/.installed | sort

# The demo's home, when `make demo` has not made it yet.
$(DEMO_HOME)/airflow.db: | setup
	$(DEMO_ENV) $(VENV)/bin/airflow db migrate > /dev/null

# `airflow standalone` on 127.0.0.1:$(UI_PORT), in the foreground (Ctrl-C stops it), with the venv's bin first on
# PATH: standalone starts `airflow scheduler`, `airflow api-server`... from PATH. Prints the URL and login once up.
ui: setup $(DEMO_HOME)/airflow.db
	env $(DEMO_ENV) UI_PORT=$(UI_PORT) $(PY) scripts/ui.py

# ruff, mypy, and the layout's rules (import-linter contracts in pyproject.toml: which folder may import which).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The documentation site (mkdocs.yml, docs/) into site/. --strict: a warning, a broken link or anchor, or a missing
# included example DAG fails it. Offline: no web fonts or external assets. NO_MKDOCS_2_WARNING: Material's banner.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The whole suite on $(AIRFLOW_VERSION), then the core of it on $(AIRFLOW_MIN_VERSION) (test-min), which runs even when
# the first part failed; either failing fails `make test`. The docs are built first (make docs).
test: setup gateway jupyter lint docs setup-min
	status=0; $(MAKE) test-labextension || status=1; $(PY) -m pytest || status=$$?; \
		$(MIN_VENV)/bin/python -m pytest $(MIN_TESTS) || status=1; exit $$status

clean:
	rm -rf $(DEMO_HOME) .pytest_cache site

bench: setup gateway
	$(PY) -m bench.run

bench-smoke: setup gateway
	$(PY) -m bench.run --smoke

# The distributed suite alone (PostgreSQL, Redis, moto's S3, api-server, scheduler, dag-processor and two Celery
# workers on 127.0.0.1; about 2 minutes). `make test` runs it too.
.PHONY: test-distributed soak
test-distributed: setup
	$(PY) -m pytest tests/distributed tests/test_supervision.py

# Not in CI: SOAK_N notebook tasks (and as many no-op and PapermillOperator tasks) through two Celery workers; prints
# and writes the figures (bench/results/soak-*.json), see bench/README.md. `make soak SOAK_N=200` for a short one.
SOAK_N ?= 1000
soak: setup
	$(PY) -m bench.soak --tasks $(SOAK_N)
