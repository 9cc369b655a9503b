# rollguard daemon image: slim Python, non-root, `rollguard run` by default.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY service ./service
COPY pipelines ./pipelines
COPY alarms ./alarms
RUN pip install . && useradd --create-home --uid 10001 rollguard && mkdir -p /var/lib/rollguard && chown rollguard /var/lib/rollguard

USER rollguard
# Every interface inside the container, or a published port reaches nothing; publish it on the
# host's loopback only (docker-compose.yml) and set ROLLGUARD_HTTP_TOKEN_FILE (e.g. a secret under
# /run/secrets) before exposing it further: README "HTTP API exposure".
ENV ROLLGUARD_STATE_DIR=/var/lib/rollguard ROLLGUARD_HTTP_ADDR=0.0.0.0:8787
EXPOSE 8787
VOLUME ["/var/lib/rollguard"]
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=2)"
ENTRYPOINT ["rollguard"]
CMD ["run"]
