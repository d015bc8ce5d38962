VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint clean browser

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel first: a bare "torch" requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deva demo

test: $(STAMP) browser
	$(VENV)/bin/ruff check deva tests bench
	DEVA_ARTIFACTS=test-artifacts $(VENV)/bin/pytest -q

# Headless Chromium for the web app's browser test (tests/test_web.py); CI runs as root on
# Debian. Elsewhere install it yourself (the test is skipped without it).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "note: /usr/bin/chromium missing (not root or no apt-get): the web browser test is skipped"; \
	  fi; \
	fi

bench: $(STAMP)
	$(PY) -m bench.run

lint: $(STAMP)
	$(VENV)/bin/ruff check deva tests bench
	$(VENV)/bin/ruff format --check deva tests bench

clean:
	rm -rf $(VENV) build *.egg-info
