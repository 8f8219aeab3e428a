# The README's two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8501
# Loopback by default; `make run HOST=0.0.0.0` (or a reverse proxy in front) to serve a network.
HOST ?= 127.0.0.1
export HF_HUB_OFFLINE ?= 1

.PHONY: run test test-slow test-browser lint bench clean-venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# Real-browser test: Debian's chromium (apt-get, as root or via sudo) + playwright pointed at it.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

test-browser: $(STAMP)
	@test -x $(CHROMIUM) || { echo "installing chromium with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	@$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install --quiet "playwright>=1.40"
	HF_HUB_OFFLINE=1 MMEXPLORE_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q -m browser

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for b in benchmarks/*.py; do HF_HUB_OFFLINE=1 $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
