# The driver and executor image that conf/spark/k8s.properties names
# (spark.kubernetes.container.image): Python 3.11, Java 17, and the locked environment with
# dermspark, made by scripts/bootstrap.sh itself, so that its versions are the lock's and Horovod
# is built with the same flags as on any other machine (tests/test_dockerfile.py checks both).
#
#   docker build -t REGISTRY/dermspark:0.1.0 .
#
# The build stage has the compiler Horovod needs; the image has none.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/dermspark
COPY pyproject.toml constraints.txt README.md spark-submit.sh ./
COPY scripts scripts
COPY lib lib
COPY jobs jobs
COPY conf conf
# The environment, then dermspark's wheel installed into build/code/HASH, which the driver
# imports (spark-submit.sh): made here, as the image's user cannot write there later.
RUN scripts/bootstrap.sh \
    && .venv/bin/python scripts/pack_env.py --installed \
    && rm -rf /root/.cache

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini procps \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 185 --create-home --home-dir /home/spark spark \
    && mkdir -p /opt/work && chown spark /opt/work
COPY --from=build /opt/dermspark /opt/dermspark
COPY docker/entrypoint.sh /opt/entrypoint.sh
# Every executor pod runs this image: jobs submitted from it ship no environment.
ENV SPARK_HOME=/opt/dermspark/.venv/lib/python3.11/site-packages/pyspark \
    PATH=/opt/dermspark/.venv/bin:$PATH \
    PYSPARK_PYTHON=/opt/dermspark/.venv/bin/python \
    DERMSPARK_PACK_ENV=no \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MLFLOW_DISABLE_TELEMETRY=true
WORKDIR /opt/work
USER 185
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/entrypoint.sh"]
