# syntax=docker/dockerfile:1
# GPU image on the official vLLM image, built from the repository root:
#   docker build -f deploy/gpu-worker.Dockerfile -t abstractor/gpu-worker:0.1.0 .
# Two uses, both as uid/gid 10001:
#   - `abstractor worker` (the default) with ABSTRACTOR_ENGINE=vllm: vLLM in-process on the GPU;
#   - `vllm serve /models/<dir> ...` (override the entrypoint): the OpenAI-compatible server that
#     CPU workers reach with ABSTRACTOR_ENGINE=openai (what compose.yaml and the Helm chart do).
# Model weights are never baked in nor fetched at start: mount them read-only at /models
# (HF_HUB_OFFLINE=1 makes a missing file an error instead of a download).

ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0
FROM ${VLLM_IMAGE}

RUN groupadd --system --gid 10001 abstractor \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/abstractor --create-home \
      --shell /usr/sbin/nologin abstractor \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/abstractor /models

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/vllm_env.py ./scripts/vllm_env.py
COPY schemas ./schemas
COPY workers ./workers
COPY service ./service
# Our own venv that sees the image's vLLM and torch (system site-packages). As in scripts/setup-vllm
# (the environment the tests run): only our dependencies that vLLM lacks are added, constrained to what
# the image has, so every package vLLM was built against stays as it is; the CPU engine (llama.cpp and
# the embedded GGUF) is left out, the package itself goes in without dependencies.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python3 -m venv --system-site-packages /opt/abstractor \
 && python3 -m pip freeze --exclude-editable > /tmp/vllm-constraints.txt \
 && /opt/abstractor/bin/python scripts/vllm_env.py requirements \
    | xargs /opt/abstractor/bin/pip install -c /tmp/vllm-constraints.txt \
 && /opt/abstractor/bin/pip install --no-deps . \
 && /opt/abstractor/bin/python -c "import vllm, service.cli" \
 && rm -rf /src /tmp/vllm-constraints.txt

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
