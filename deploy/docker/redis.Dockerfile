# Redis from Debian's package, on the same base as the CHIMP image: for hosts that cannot pull
# from Docker Hub (compose.offline.yaml). Debian 12 ships Redis 7.0 with its security updates.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data \
    && chown redis:redis /data
USER redis
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
CMD ["redis-server"]
