# The two commands of a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test chaos demo bench bench-flash bench-pipeline bench-peer browser-check clean

# (Re)install when the venv is missing or pyproject.toml changed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/crossfill run

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Every fault at once on real processes (tests/chaos/, about a minute; also part of `make test`), alone.
chaos: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -rs -s tests/chaos

demo: $(STAMP)
	$(BIN)/crossfill demo

# The console in a real browser on the real stack (also part of `make test`, ~15 s); screenshots in
# var/screenshots/. Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver).
browser-check: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		echo "browser-check: chromium/chromedriver missing (apt-get install chromium chromium-driver); it will skip"
	$(BIN)/python -m pytest -q -p no:cacheprovider -rs tests/console/test_browser.py

# Benchmarks (BENCHMARKS.md): each prints its figures beside the baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python bench/receiver.py

# A flash sale: 3,000 paid orders in 10 s, drained at Stripe's permitted rate; draws bench/results/flash_sale.png.
bench-flash: $(STAMP)
	$(BIN)/python bench/flash_sale.py

# CPU per order against Celery's own floor, interleaved windows.
bench-pipeline: $(STAMP)
	$(BIN)/python bench/pipeline.py

# crossfill beside the synchronous handler of Stripe's fulfillment guide.
bench-peer: $(STAMP)
	$(BIN)/python bench/peer_sync.py

clean:
	rm -rf $(VENV) var .pytest_cache
