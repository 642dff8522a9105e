# Owlat as one `owlat serve` process: slim, non-root, with a health check on /readyz.
# UNTESTED: the machine this was written on had no container runtime (see the README).
#
#   docker build -t owlat .
#   docker run -p 3210:3210 -p 3211:3211 -v owlat-data:/var/lib/owlat owlat
#
# Without OWLAT_DATABASE_URL it serves the embedded SQLite database in /var/lib/owlat (one
# container); compose.yaml runs two of them on PostgreSQL behind a load balancer.

# -- the dashboard (web/ → a static build) ---------------------------------------------------
FROM node:22-bookworm-slim AS dashboard
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npx --no-install vue-tsc --noEmit \
    && npx --no-install vite build --logLevel warn --outDir /dashboard --emptyOutDir

# -- owlat and its runtime dependencies (pinned by requirements.lock) in a venv --------------
FROM python:3.11-slim AS python
ENV VIRTUAL_ENV=/opt/owlat PATH=/opt/owlat/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/owlat
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY src/ src/
COPY --from=dashboard /dashboard/ src/owlat/web/
# the lock file as constraints: only the runtime dependencies, at the tested versions
RUN pip install --no-cache-dir --constraint requirements.lock .

# -- the image -------------------------------------------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/owlat owlat \
    && mkdir -p /var/lib/owlat && chown owlat:owlat /var/lib/owlat
COPY --from=python /opt/owlat /opt/owlat
ENV PATH=/opt/owlat/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OWLAT_DATA_DIR=/var/lib/owlat \
    OWLAT_HOST=0.0.0.0
USER owlat
WORKDIR /var/lib/owlat
VOLUME ["/var/lib/owlat"]
EXPOSE 3210 3211
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:3210/readyz', timeout=2).status != 200)"]
# SIGTERM drains (OWLAT_SHUTDOWN_TIMEOUT, 30 s): give `docker stop -t` a little more than that
STOPSIGNAL SIGTERM
CMD ["owlat", "serve", "--log-format", "json"]
