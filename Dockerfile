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
# Same install command as `make install` (CI), without the test extra.
RUN python -m venv /venv && /venv/bin/python -m pip install --quiet --upgrade pip \
    && /venv/bin/python -m pip install --quiet -e .

FROM python:3.11-slim
# Same system packages as .ci/run: a CJK font for contracts, poppler for verifying signed PDFs.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei poppler-utils curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 bank
COPY --from=build /venv /venv
COPY --from=build --chown=bank:bank /app /app
WORKDIR /app
USER 10001:10001
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 VAR_DIR=/app/var
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health/ready || exit 1
# Migrations first, then several workers.
CMD ["sh", "-c", "python -m app migrate && exec python -m app serve --host 0.0.0.0 --port 8000 --workers ${WORKERS:-4}"]
