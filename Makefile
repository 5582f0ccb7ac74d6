# The three commands of the README. Each one bootstraps .venv on a fresh machine
# that has only python3 (3.11+) and make; nothing else is installed by hand.

VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The venv's bin first, so the notebooks' "python3" kernel is the project's Python.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONHASHSEED := 0

.PHONY: report test lint lock lab bench browser

# Rewrites notebooks/*.ipynb (outputs), exported/ and README.md's generated blocks,
# and, when Chromium is present, exported/chat_screenshot.png. To discard a run:
# git checkout -- notebooks exported README.md
report: $(STAMP)
	$(PYTHON) -m tools.report build
	@if command -v chromium >/dev/null 2>&1; then $(PYTHON) -m tools.screenshot; \
	else echo "sem Chromium: mantida a captura de tela exported/chat_screenshot.png (make browser instala)"; fi

# WSLAB_LIVE=0: re-running notebook 03 must not reach for the internet (nor record
# a live capture); make report keeps the real live attempt.
test: $(STAMP)
	WSLAB_LIVE=0 $(PYTHON) -m pytest tests notebooks --nbval --nbval-current-env

# ruff: the lint rules and the formatter configured in pyproject.toml, over the
# whole tree (notebooks included); `.venv/bin/ruff format .` applies the format.
# mypy: the type checker, strict, over wslab/ ([tool.mypy] in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# requirements.lock pins every transitive dependency, so a new release of one of
# them cannot change what the notebooks print. After adding or bumping a direct
# dependency in requirements.txt (or pyproject.toml), run `make lock` and commit
# both files; the next `make` installs exactly the lock.
lock: $(VENV)/bin/pip-compile
	$(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock requirements.txt

# Jupyter refuses to run as root unless told; containers often are root. The root
# is the repository (so the notebooks' links to ../README.md open), showing notebooks/.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

# The measurements at full size (several minutes); the notebooks run them small.
bench: $(STAMP)
	$(PYTHON) -m benchmarks.transports
	$(PYTHON) -m benchmarks.chat_routing
	$(PYTHON) -m benchmarks.chat_fanout
	$(PYTHON) -m benchmarks.chat_fanout_cluster
	$(PYTHON) -m benchmarks.chat_ingest --fsyncs
	$(PYTHON) -m benchmarks.chat_faults
	$(PYTHON) -m benchmarks.chat_login
	$(PYTHON) -m benchmarks.chat_tls

# Debian's Chromium, for the browser test of the chat client (make test skips that
# test, saying why, when no Chromium is found). Installs through apt-get as root.
browser:
	@command -v chromium >/dev/null 2>&1 || \
	{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	{ echo "Não consegui instalar o Chromium: rode como root num Debian/Ubuntu, ou instale o pacote chromium."; exit 1; }
	@chromium --version 2>/dev/null

# Installs the lock, after checking it holds every pin of requirements.txt.
$(STAMP): requirements.txt requirements.lock pyproject.toml
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "wslab precisa de Python 3.11 ou mais novo (python3 é $$(python3 --version))."; exit 1; }
	@grep -E '^[A-Za-z0-9_.-]+==' requirements.txt | while read -r pin; do \
		grep -qix "$$pin" requirements.lock || \
		{ echo "requirements.lock não tem $$pin de requirements.txt: rode make lock."; exit 1; }; \
	done
	@$(PYTHON) -m pip --version >/dev/null 2>&1 || $(MAKE_VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $(STAMP)

# pip-compile alone, so `make lock` works while the lock is behind requirements.txt.
$(VENV)/bin/pip-compile:
	@$(PYTHON) -m pip --version >/dev/null 2>&1 || $(MAKE_VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check "$$(grep -i '^pip-tools==' requirements.txt)"

# A venv with pip; on Debian-like systems whose python3 lacks ensurepip, install
# python3-venv first (as root, through apt-get), since nothing is set up by hand.
MAKE_VENV = { rm -rf $(VENV) && python3 -m venv $(VENV); } || \
	{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && apt-get install -y -qq python3-venv && \
	  rm -rf $(VENV) && python3 -m venv $(VENV); } || \
	{ echo "python3 -m venv falhou: instale o pacote python3-venv e rode de novo."; exit 1; }
