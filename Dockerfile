# Production image: `pistalka serve` as an unprivileged user; data and secrets under /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PISTALKA_DATA_DIR=/data

# pg_dump serves `pistalka backup` on PostgreSQL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system pistalka \
    && useradd --system --gid pistalka --home-dir /app --shell /usr/sbin/nologin pistalka \
    && mkdir -p /data && chown pistalka:pistalka /data

WORKDIR /app
COPY pyproject.toml alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
# Editable install: the code finds alembic.ini, migrations/, templates/ and static/ beside it.
RUN pip install -e . && python -m compileall -q app

USER pistalka
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["pistalka", "serve", "--host", "0.0.0.0", "--port", "8000"]
