# syntax=docker/dockerfile:1
# Multi-stage: build the virtualenv with compilers, run as a non-root user without them.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY core ./core
COPY models ./models
COPY services ./services
COPY integrations ./integrations
COPY handlers ./handlers
COPY sandbox ./sandbox
COPY migrations ./migrations
COPY risk ./risk
# The emulator (its own service in docker-compose) knows the mini-program's pages from this file.
COPY miniprogram_stub/app.json ./miniprogram_stub/app.json
# Same install command as `make install` (CI), without the test extra.
RUN python -m venv /venv && /venv/bin/python -m pip install --quiet --upgrade pip \
    && /venv/bin/python -m pip install --quiet -e .

FROM python:3.11-slim
# Same system packages as .ci/run: a CJK font embedded in every contract, poppler for verifying PDFs.
# (.ci/run also installs chromium, for the staff console's browser tests only: not in the served image.)
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei poppler-utils \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 bank
COPY --from=build /venv /venv
COPY --from=build --chown=bank:bank /app /app
WORKDIR /app
USER 10001:10001
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 VAR_DIR=/app/var \
    CJK_FONT_PATH=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
EXPOSE 8000
# Exec form, no shell and no curl: the image's own Python asks the readiness endpoint.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status == 200 else 1)"]
# Migrations first, then serve. One worker by default (the embedded SQLite serves one); with MySQL set
# WORKERS (docker-compose does).
CMD ["sh", "-c", "python -m app migrate && exec python -m app serve --host 0.0.0.0 --port 8000 --workers ${WORKERS:-1}"]
