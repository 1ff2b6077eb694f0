# Image of this project's Airflow with the local backend. docker-compose.yaml runs every
# Airflow component from it. Build with `docker compose build`
# or `docker build -t fraud-detection-airflow:local .`.
FROM python:3.11-slim

# uid 50000 with gid 0, as in the official Airflow image, so that the named volumes created
# from this image are writable by the user that runs Airflow.
ARG AIRFLOW_UID=50000

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    FRAUD_DETECTION_HOME=/opt/fraud-detection/var \
    FRAUD_DETECTION_BACKEND=local \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/fraud-detection/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/fraud-detection/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GX_ANALYTICS_ENABLED=false

# `pip install .` puts a copy of fraud_airflow and fraud_detection in site-packages, and
# site-packages comes before Airflow's plugins folder on sys.path. PYTHONPATH comes first,
# so the source folders (the copies below, or the bind mounts of docker-compose.yaml) are the
# code that runs, and `fraud-detection run` finds dags/ beside plugins/.
ENV PYTHONPATH=/opt/fraud-detection/plugins:/opt/fraud-detection/include

WORKDIR /opt/fraud-detection

# Dependencies first, in their own layer: with empty package folders, `pip install .`
# installs the pinned dependencies of pyproject.toml and no code, so a code change does not
# reinstall them. The Postgres provider brings the drivers of the metadata database
# (psycopg2-binary, and asyncpg for Airflow's async engine); 7.1.1 resolves beside the pins.
COPY pyproject.toml README.md ./
RUN mkdir include plugins \
    && pip install . "apache-airflow-providers-postgres==7.1.1"

COPY include/ include/
COPY plugins/ plugins/
RUN pip install --no-deps --force-reinstall . \
    && rm -rf build ./*.egg-info
COPY dags/ dags/

RUN useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir /opt/airflow --create-home --shell /bin/bash airflow \
    && mkdir -p /opt/fraud-detection/var \
    && chown -R airflow:0 /opt/airflow /opt/fraud-detection/var \
    && chmod -R g+rwX /opt/airflow /opt/fraud-detection/var

USER airflow
CMD ["airflow", "--help"]
