# bnn-mcu: two entry points.
#   make demo   set up everything, then train -> convert -> generate -> verify (host + QEMU)
#   make test   set up everything, then run the test suite
# Set-up is idempotent: each step is skipped when it is already done.

SHELL        := /bin/bash
PYTHON       ?= python3
VENV         := .venv
PY           := $(VENV)/bin/python
PIP          := $(VENV)/bin/pip
TORCH_PIN    := torch==2.13.0
# PyPI's Linux torch wheels bundle CUDA (GBs): the CPU build comes from PyTorch's own index.
# (Where that index is unreachable pip retries it, then takes a local wheel, e.g. find-links.)
TORCH_INDEX  ?= https://download.pytorch.org/whl/cpu
APT_PACKAGES := gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm \
                dataset-fashion-mnist python3-venv make \
                clang libclang-rt-14-dev cppcheck clang-tidy chromium
PYTEST_ARGS  ?=

.PHONY: demo test setup apt venv clean

demo: setup
	$(VENV)/bin/bnn-mcu demo

test: setup
	# pytest exits 5 when it collects no tests: make fails on any non-zero code.
	$(PY) -m pytest $(PYTEST_ARGS)

setup: apt venv

# Install only the Debian packages that are missing (one apt-get update, then install).
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "Debian packages: all present"; fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, from the CPU index: `pip install torch==2.13.0` alone pulls the CUDA build.
	$(PIP) install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_PIN)
	$(PIP) install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info out
