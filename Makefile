# The two commands of a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lock chaos demo bench bench-flash bench-pipeline bench-peer browser-check clean

LOCKS := requirements/runtime.txt requirements/dev.txt
# uv resolves the locks (a pinned version, in a venv of its own): seconds where pip-compile takes minutes.
UV_VERSION := 0.13.8
LOCK_VENV := .venv-lock
UV_COMPILE = UV_NATIVE_TLS=1 $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform linux $(UPGRADE)

# (Re)install when the venv is missing, pyproject.toml changed or a lock changed. The lock brings
# every dependency with its hashes (pip, setuptools included); the project goes in on top of it,
# editable, with no dependencies of its own and no build isolation (nothing unhashed is downloaded).
$(STAMP): pyproject.toml $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Re-resolve both locks from pyproject.toml, keeping the current pins that still fit it
# (`make lock UPGRADE=--upgrade` takes the newest releases instead). runtime.txt is what the image
# installs; dev.txt adds the dev extra and is held to runtime.txt's versions (-c).
lock:
	test -x $(LOCK_VENV)/bin/uv || ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet uv==$(UV_VERSION))
	$(UV_COMPILE) --extra flower pyproject.toml requirements/build.in -o requirements/runtime.txt
	$(UV_COMPILE) --extra dev --extra flower pyproject.toml requirements/build.in -c requirements/runtime.txt \
		-o requirements/dev.txt

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

# A flash sale: 1,000 paid orders at 300/s, batched reads against one read per order; draws bench/results/flash_sale_batched.png.
bench-flash: $(STAMP)
	$(BIN)/python bench/flash_sale.py

# CPU per order against Celery's own floor, interleaved windows.
bench-pipeline: $(STAMP)
	$(BIN)/python bench/pipeline.py

# crossfill beside the synchronous handler of Stripe's fulfillment guide.
bench-peer: $(STAMP)
	$(BIN)/python bench/peer_sync.py

clean:
	rm -rf $(VENV) $(LOCK_VENV) var .pytest_cache
