# The CMS code location image: Dagster's webserver and daemon use Dagster's own images (Helm chart),
# this one serves the definitions over gRPC and runs each run's pod (infra/helm/values.yaml).
#
#   docker build -t <registry>/cms:<version> .
#
# Dependencies are pinned in infra/docker/requirements.lock (regenerate it with `make lock` after changing
# pyproject.toml); the dbt manifest is prepared at build time, so nothing parses dbt when a pod starts.
FROM python:3.11.7-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DO_NOT_TRACK=1
WORKDIR /opt/cms
COPY infra/docker/requirements.lock infra/docker/requirements.lock
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-virtualenv -r infra/docker/requirements.lock
COPY pyproject.toml README.md ./
COPY cms_dagster cms_dagster
COPY dbt_project dbt_project
RUN /opt/venv/bin/pip install --require-virtualenv --no-deps . \
 && CMS_DBT_PROJECT_DIR=/opt/cms/dbt_project /opt/venv/bin/cms dbt prepare

FROM python:3.11.7-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    CMS_DBT_PROJECT_DIR=/opt/cms/dbt_project \
    CMS_HOME=/tmp/cms
RUN groupadd --gid 10001 cms \
 && useradd --uid 10001 --gid cms --no-create-home --shell /usr/sbin/nologin cms \
 && mkdir -p /opt/dagster/home \
 && chown cms:cms /opt/dagster/home
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=cms:cms /opt/cms/dbt_project /opt/cms/dbt_project
WORKDIR /opt/cms
USER 10001:10001
EXPOSE 3030
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "3030", "--module-name", "cms_dagster.definitions"]
