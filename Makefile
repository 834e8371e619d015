# `make demo` runs the main job; `make test` runs the whole test suite (what CI runs) and
# `make test-fast` only its pure tier (no Ray, no Serve, no browser). All create .venv on
# first use and install the project with pinned constraints; `make test` also installs Chromium.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The browser test drives the distribution's Chromium, never a browser Playwright downloads
# (that needs more of the internet than package registries). Another one: make test CHROMIUM=/path.
CHROMIUM ?= /usr/bin/chromium
APT_GET  := env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600

.PHONY: demo test test-fast install chromium clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so the resolver never reaches for a CUDA build
	$(PY) -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

chromium: $(CHROMIUM)

# Installed once, when missing, as root (or through passwordless sudo), without questions.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then as_root=; elif sudo -n true 2>/dev/null; then as_root="sudo -n"; else \
	  echo "error: $(CHROMIUM) is missing and installing Chromium needs root. To fix: run 'make chromium' as" \
	       "root, or install Chromium yourself and pass its path: make test CHROMIUM=/path/to/chromium"; \
	  exit 1; fi; \
	set -x; $$as_root $(APT_GET) update && $$as_root $(APT_GET) install chromium
	@test -x $(CHROMIUM) || { echo "error: apt-get installed chromium but $(CHROMIUM) is not there." \
	  "To fix: pass the executable's path: make test CHROMIUM=/path/to/chromium"; exit 1; }

demo: $(STAMP)
	$(VENV)/bin/planner demo --out out/

test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m core

clean:
	rm -rf $(VENV) out .pytest_cache
