VENV ?= .venv
PY := $(VENV)/bin/python
# Two stamps, one venv: the demo needs the core package only (torch, OpenCV, PyAV, ...);
# the tests add the dev extra (gradio, ray, transformers, playwright, pytest) on top.
CORE := $(VENV)/.core
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup demo test bench lint clean browser

$(CORE): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel first: a bare "torch" requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	# "deva" is this project's old pip name (and an unrelated PyPI package): either would
	# shadow "import deva", so it goes before deva-track is installed.
	$(PY) -m pip uninstall --quiet --yes deva 2>/dev/null || true
	$(PY) -m pip install --quiet -e .
	touch $(CORE)

$(STAMP): $(CORE)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(CORE)
	$(VENV)/bin/deva demo

test: $(STAMP) browser
	$(VENV)/bin/ruff check deva tests bench
	DEVA_ARTIFACTS=test-artifacts $(VENV)/bin/pytest -q

# Headless Chromium for the web app's browser test (tests/test_web.py); CI runs as root on
# Debian. DEVA_NO_BROWSER=1 skips it (the test is then skipped), as does not being root.
browser:
	@if [ -x "$(CHROMIUM)" ]; then \
	  :; \
	elif [ -n "$$DEVA_NO_BROWSER" ] && [ "$$DEVA_NO_BROWSER" != 0 ]; then \
	  echo "note: DEVA_NO_BROWSER is set: not installing Chromium; the web browser test is skipped"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "note: installing Chromium for the web browser test with apt-get (as root; this may"; \
	  echo "      upgrade system packages it depends on). Set DEVA_NO_BROWSER=1 to skip it."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "note: $(CHROMIUM) missing (not root or no apt-get): the web browser test is skipped"; \
	fi

bench: $(STAMP)
	$(PY) -m bench.run

lint: $(STAMP)
	$(VENV)/bin/ruff check deva tests bench
	$(VENV)/bin/ruff format --check deva tests bench

clean:
	rm -rf $(VENV) build *.egg-info
