# syntax=docker/dockerfile:1
# crossfill's one image. The receiver is its default command; the Celery worker, beat, Flower and
# the ops console run from it too, with the commands of docker-compose.yml and the Procfile.
#
#   docker build -t crossfill:local .
#   docker run --rm -p 8000:8000 -e CROSSFILL_REDIS_URL=redis://... -e STRIPE_WEBHOOK_SECRET=whsec_... crossfill:local
#
# Every third-party package comes from requirements/runtime.txt (`make lock`), as wheels whose
# hashes the lock names; crossfill itself is built from this directory with the locked setuptools.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a venv holding the locked wheels and crossfill ----------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# The lock alone first: this layer is rebuilt when the lock changes, not on every source edit.
COPY requirements/runtime.txt requirements/runtime.txt
# Wheels only (nothing compiled, so no compiler anywhere), each checked against the lock's hashes;
# a dependency the lock lacks fails the build rather than being fetched unpinned.
RUN /opt/venv/bin/python -m pip install --require-hashes --only-binary :all: -r requirements/runtime.txt
COPY . .
# --no-build-isolation: build with the locked setuptools instead of downloading one unhashed.
RUN /opt/venv/bin/python -m pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/python -m pip check

# --- final: the venv, a non-root user, nothing else ---------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
# A fixed uid so volumes and runAsUser policies can name it; its home is the working directory, so
# the default data dir (./var) is writable.
RUN groupadd --system --gid 10001 crossfill \
    && useradd --system --uid 10001 --gid crossfill --home-dir /home/crossfill --create-home \
       --shell /usr/sbin/nologin crossfill
COPY --from=builder /opt/venv /opt/venv
WORKDIR /home/crossfill
USER 10001:10001
EXPOSE 8000
# The receiver's liveness (/healthz: the process answers HTTP; /readyz adds Redis). Other roles
# override it in docker-compose.yml: the worker answers a Celery ping, Flower and the console their
# own health URLs; beat has no probe (it serves nothing), restart: covers its exit.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CROSSFILL_PORT', '8000'), timeout=2)"]
CMD ["gunicorn", "--config", "python:webhooks.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "3", "webhooks:create_app()"]
