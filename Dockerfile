# The calico-dcos scheduler image, for plain Docker hosts. The DC/OS package does not use it:
# it runs `make dist`'s zipapp on python:3.11-slim-bookworm under the Mesos containerizer,
# since the docker step restarts dockerd on every agent, which would stop this container.
#
# Build stage: pymesos needs http-parser, whose sdist no longer compiles on Python >= 3.11;
# scripts/build_http_parser_wheel.py regenerates its C source with Cython 3 and builds a wheel,
# exactly as `make deps` does. Every other dependency comes from PyPI as a wheel.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY config/ config/
COPY calico_dcos/ calico_dcos/
RUN python scripts/build_http_parser_wheel.py /wheels \
 && python -m pip wheel -q --find-links /wheels --only-binary http-parser -w /wheels .

# Run stage: no compiler, no sources; the scheduler runs as an unprivileged user (it only
# talks HTTP to the Mesos master and ZooKeeper; the agents do the privileged work).
FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels calico-dcos \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --create-home --home-dir /home/calico calico
USER 10001
WORKDIR /home/calico
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
# The API port as the scheduler picks it: CALICO_SERVICE_API_PORT, else PORT_API, else PORT0,
# else 8080. Marathon checks /v1/health itself; this serves `docker run` and plain Docker hosts.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request as u; e = os.environ; p = [v for v in (e.get('CALICO_SERVICE_API_PORT'), e.get('PORT_API'), e.get('PORT0'), '8080') if v and v != '0'][0]; u.urlopen(f'http://127.0.0.1:{p}/v1/health', timeout=4)"
# Options come from CALICO_* environment variables (the Marathon app sets every one), or from
# a file: `docker run IMAGE run --options /etc/calico-dcos/options.yaml`.
ENTRYPOINT ["calico-dcos"]
CMD ["run"]
