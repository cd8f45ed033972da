SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

# Debian packages the tests and benchmarks need (chromium: the wizard's browser tests).
# slapd, ldap-utils: the ldap micromanager's tests run a real slapd on loopback;
# qbittorrent-nox: the qbittorrent micromanager's tests run the real Web UI.
# wrk: only for benchmarks/manager.py (an HTTP load generator in C, so the client does not eat
# the cores the server is measured on); no test needs it.
DEBIAN_PACKAGES = docker-compose slapd ldap-utils qbittorrent-nox chromium wrk

# Use sudo only when not root and sudo exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo 2>/dev/null)

.PHONY: venv system-deps test lint demo bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

system-deps:
	@missing=""; \
	for pkg in $(DEBIAN_PACKAGES); do \
		dpkg -s "$$pkg" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		if echo "$$missing" | grep -qw slapd; then \
			echo "slapd slapd/no_configuration boolean true" | $(SUDO) debconf-set-selections; \
		fi; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: venv system-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .

# The media-server example, checked, built, and served by the manager in dry-run
# (no cluster needed): open http://127.0.0.1:8080 and log in with the password it prints.
DEMO_PARAMS = --set domain=home.example.com --set media_path=/srv/media

demo: venv
	$(VENV)/bin/mora check examples/media-server
	$(VENV)/bin/mora build examples/media-server -o build/media-server.manifest.json
	$(VENV)/bin/mora graph examples/media-server
	rm -rf build/demo-manager  # a fresh start, so the admin password is printed again
	$(VENV)/bin/mora manager serve examples/media-server --dry-run $(DEMO_PARAMS) \
		--host 127.0.0.1 --port 8080 --data build/demo-manager

bench: venv system-deps
	$(PY) benchmarks/compile.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis .mypy_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
