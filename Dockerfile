# The Citygate gateway as a container image: `citygate serve`, configured by CITYGATE_* variables.
#   docker build -t citygate .
#   docker run -p 4000:4000 -e CITYGATE_STORE=postgresql://citygate@db/citygate \
#     -e CITYGATE_OPERATOR_KEY=... -v ./connectors:/etc/citygate/connectors:ro \
#     -v ./policy.yaml:/etc/citygate/policy.yaml:ro citygate
# Replicas, the load balancer and health checks: docs/operators.md, "Deployment".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The package only (no tests, no benchmark, no connectors): installed, then its sources removed.
COPY pyproject.toml README.md /tmp/citygate/
COPY gateway /tmp/citygate/gateway
RUN pip install /tmp/citygate && rm -rf /tmp/citygate

# Never root: a user of its own, owning only its state folder (SQLite, when no PostgreSQL is given).
RUN useradd --system --uid 10001 --home-dir /var/lib/citygate --create-home --shell /usr/sbin/nologin citygate \
    && mkdir -p /etc/citygate/connectors
USER citygate
WORKDIR /var/lib/citygate

# Where the operator's files are mounted, and what `citygate serve` is given. Every other
# setting is read by citygate itself from its CITYGATE_* variable (docs/operators.md):
# CITYGATE_OPERATOR_KEY, CITYGATE_PSEUDONYM_KEY, CITYGATE_REDIS_URL, CITYGATE_STORE_*_TIMEOUT,
# CITYGATE_MAX_*, CITYGATE_RATE_LIMIT, ... FORWARDED_ALLOW_IPS: the load balancer's address.
ENV CITYGATE_HOST=0.0.0.0 \
    CITYGATE_PORT=4000 \
    CITYGATE_STORE=sqlite:////var/lib/citygate/citygate.db \
    CITYGATE_CONNECTORS=/etc/citygate/connectors \
    CITYGATE_POLICY= \
    CITYGATE_SUPERGRAPH= \
    CITYGATE_LOG_LEVEL=warning
VOLUME ["/var/lib/citygate"]
EXPOSE 4000

# Liveness only: /healthz answers while the process does. Readiness (/readyz: the store answers,
# the change listener is connected) is for the load balancer to ask, not a reason to restart.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CITYGATE_PORT', '4000'), timeout=2)"]

# `citygate serve` reads every CITYGATE_* variable itself (an empty one counts as unset), so a
# mounted citygate.yaml (CITYGATE_CONFIG=/etc/citygate/citygate.yaml) can set the rest; arguments
# given to `docker run` are added as flags (e.g. --max-cost 5000), which win over both. To serve a
# composed supergraph instead of connectors, set CITYGATE_SUPERGRAPH and CITYGATE_CONNECTORS= (empty).
ENTRYPOINT ["citygate", "serve"]
