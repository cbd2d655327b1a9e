# kstream in a container: the generator, the detector and (with EXTRAS="[notebooks]") Jupyter.
# docker-compose.yml builds it; the Kafka broker is the official apache/kafka image there.
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Dependencies first, so that editing the data or notebooks does not reinstall them.
ARG EXTRAS=""
COPY pyproject.toml README.md ./
COPY kstream ./kstream
RUN pip install --no-cache-dir ".${EXTRAS}"

COPY datasets ./datasets
# kstream finds datasets/, models/ and runs/ next to the kstream package it imports
# (kstream/paths.py PROJECT_ROOT). Import it from /app, not from site-packages, so the
# bundled sample and the mounted /app/models are the ones it uses.
ENV PYTHONPATH=/app

ENTRYPOINT ["kstream"]
CMD ["--help"]
