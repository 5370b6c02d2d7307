# syntax=docker/dockerfile:1
# GPU image on the official vLLM image, built from the repository root:
#   docker build -f deploy/gpu-worker.Dockerfile -t abstractor/gpu-worker:0.1.0 .
# Two uses, both as uid/gid 10001:
#   - `abstractor worker` (the default) with ABSTRACTOR_ENGINE=vllm: vLLM in-process on the GPU;
#   - `vllm serve /models/<dir> ...` (override the entrypoint): the OpenAI-compatible server that
#     CPU workers reach with ABSTRACTOR_ENGINE=openai (what compose.yaml and the Helm chart do).
# Model weights are never baked in nor fetched at start: mount them read-only at /models
# (HF_HUB_OFFLINE=1 makes a missing file an error instead of a download).

ARG VLLM_IMAGE=vllm/vllm-openai:v0.25.0
FROM ${VLLM_IMAGE}

# Compilers for llama-cpp-python, a dependency of the package (the CPU engine).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 abstractor \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/abstractor --create-home \
      --shell /usr/sbin/nologin abstractor \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/abstractor /models

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CMAKE_BUILD_PARALLEL_LEVEL=4
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY workers ./workers
COPY service ./service
# Our own venv that still sees the image's vLLM and torch (system site-packages), so the
# project's pins cannot replace the packages vLLM was built against in the system environment.
RUN python3 -m venv --system-site-packages /opt/abstractor \
 && /opt/abstractor/bin/pip install . \
 && /opt/abstractor/bin/python -c "import vllm, service.cli" \
 && rm -rf /src

ENV PATH=/opt/abstractor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/abstractor \
    XDG_CACHE_HOME=/tmp/cache \
    HF_HOME=/tmp/cache/huggingface \
    VLLM_CACHE_ROOT=/tmp/cache/vllm \
    VLLM_CONFIG_ROOT=/tmp/config/vllm \
    TRITON_CACHE_DIR=/tmp/cache/triton \
    NUMBA_CACHE_DIR=/tmp/numba \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    ABSTRACTOR_ENVIRONMENT=production \
    ABSTRACTOR_DATA_DIR=/var/lib/abstractor \
    ABSTRACTOR_ENGINE=vllm \
    ABSTRACTOR_VLLM_MODEL=/models/model
WORKDIR /home/abstractor
VOLUME ["/models"]
EXPOSE 8000
USER 10001:10001
ENTRYPOINT ["abstractor"]
CMD ["worker", "--concurrency", "1"]
