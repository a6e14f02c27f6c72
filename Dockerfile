# ehc-fhir under gunicorn, embedded SQLite store in a volume.
# Untested here: the development machines of this project have no Docker engine.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    FHIR_DATA_DIR=/data FHIR_STORE=sqlite:////data/fhir.db \
    FHIR_CONFORMANCE_DIR=/app

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_server ./fhir_server
COPY seed ./seed
# conformance resources (CodeSystems, ValueSets, ConceptMaps; profiles, NamingSystems ...), written
# into the store by `fhir-server serve` at start-up
COPY terminology ./terminology
COPY profiles ./profiles
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app fhir \
    && mkdir -p /data && chown fhir /data

USER fhir
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status == 200 else 1)"
CMD ["fhir-server", "serve", "--host", "0.0.0.0", "--port", "8080"]
