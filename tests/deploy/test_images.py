"""The Dockerfiles and the compose stack: non-root, read-only, no weights baked in, no inline secrets.

No Docker engine runs where the tests run: these read the files (deploy/lint runs hadolint and
`docker compose config` on them); building and starting the images is not tested here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, REPO

DEPLOY = REPO / "deploy"
NON_ROOT = "10001:10001"


@dataclass
class Stage:
    """One build stage: its base, and the instructions written in it."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def stages(dockerfile: Path) -> list[Stage]:
    """The build stages of a Dockerfile, with ARG defaults substituted in FROM lines."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    args: dict[str, str] = {}
    out: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and not out and "=" in rest:
            key, value = rest.split("=", 1)
            args[key.strip()] = value.strip()
        elif op == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(out))
            out.append(Stage(name, base))
        else:
            out[-1].instructions.append((op, rest))
    return out


def effective(stage_list: list[Stage], target: str, op: str) -> list[str]:
    """Values of `op` that hold in `target`, following FROM <earlier stage> chains."""
    by_name = {s.name: s for s in stage_list}
    chain: list[Stage] = []
    current: Stage | None = by_name[target]
    while current is not None:
        chain.insert(0, current)
        current = by_name.get(current.base)
    return [rest for s in chain for o, rest in s.instructions if o == op]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


@pytest.mark.parametrize(
    ("dockerfile", "target"),
    [
        pytest.param("Dockerfile", "api", id="api"),
        pytest.param("Dockerfile", "embedded", id="embedded-cpu"),
        pytest.param("gpu-worker.Dockerfile", "0", id="gpu-worker"),
    ],
)
def test_images_run_as_a_non_root_user(dockerfile: str, target: str) -> None:
    users = effective(stages(DEPLOY / dockerfile), target, "USER")
    assert users and users[-1] == NON_ROOT


def test_the_default_target_is_the_production_api() -> None:
    stage_list = stages(DEPLOY / "Dockerfile")
    assert stage_list[-1].name == "api"
    assert effective(stage_list, "api", "CMD")[-1] == '["api", "--host", "0.0.0.0", "--port", "8000"]'
    assert effective(stage_list, "embedded", "CMD")[-1] == '["serve", "--host", "0.0.0.0", "--port", "8000"]'
    assert effective(stage_list, "api", "ENTRYPOINT") == ['["abstractor"]']
    assert stage_list[0].base.startswith("python:3.11")  # pyproject: requires-python >= 3.11


def test_the_gpu_image_is_the_pinned_official_vllm_image_without_weights() -> None:
    (stage,) = stages(DEPLOY / "gpu-worker.Dockerfile")
    repository, tag = stage.base.split(":")
    assert repository == "vllm/vllm-openai"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart_values["vllm"]["image"] == {**chart_values["vllm"]["image"], "repository": repository, "tag": tag}
    text = (DEPLOY / "gpu-worker.Dockerfile").read_text()
    env = " ".join(rest for op, rest in stage.instructions if op == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "ABSTRACTOR_VLLM_MODEL=/models/" in env
    assert ("VOLUME", '["/models"]') in stage.instructions
    copied = [rest for op, rest in stage.instructions if op in {"COPY", "ADD"}]
    assert all(not re.search(r"\.(safetensors|gguf|bin|pt)\b|models?/", c) for c in copied), copied
    assert not re.search(r"snapshot_download|huggingface-cli|hf download|hf_hub_download", text)


def test_build_contexts_send_only_the_package_sources() -> None:
    for dockerfile in ("Dockerfile", "gpu-worker.Dockerfile"):
        ignore = (DEPLOY / f"{dockerfile}.dockerignore").read_text().splitlines()
        assert ignore[ignore.index("*")] == "*"  # everything is excluded first
        assert {"!pyproject.toml", "!schemas/", "!workers/", "!service/"} <= set(ignore)


HARDENED = ("api", "worker", "migrate", "vllm", "embedded")


@pytest.mark.parametrize("service", HARDENED)
def test_compose_services_are_non_root_and_read_only(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    assert spec["user"] == NON_ROOT
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert any(t.startswith("/tmp:") for t in spec["tmpfs"])


def test_compose_takes_every_credential_from_the_environment(compose: dict[str, Any]) -> None:
    secretish = re.compile(r"PASSWORD|TOKEN|SECRET|_URL$|AUTH")
    interpolated = re.compile(r"\$\{[A-Z_]+:\?[^}]*\}")
    checked = 0
    for name, spec in compose["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if key == "ABSTRACTOR_OPENAI_BASE_URL":
                assert value == "http://vllm:8000/v1"  # an address, not a credential
            elif secretish.search(key):
                assert interpolated.search(str(value)), f"{name}: {key} is not a required variable"
                checked += 1
    assert checked >= 10


def test_compose_wires_the_production_shape(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker", "vllm"} <= set(services)
    assert services["migrate"]["command"] == ["migrate"]
    assert services["api"]["command"] == ["api", "--host", "0.0.0.0", "--port", "8000"]
    assert services["worker"]["command"][0] == "worker"
    for consumer in ("api", "worker"):
        assert services[consumer]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        env = services[consumer]["environment"]
        assert env["ABSTRACTOR_ENGINE"] == "openai"
        assert env["ABSTRACTOR_OPENAI_MODEL"] == "abstractor"
        assert env["ABSTRACTOR_ENVIRONMENT"] == "production"
        assert "abstractor_app:" in env["ABSTRACTOR_DATABASE_URL"]  # the app role, not the owner
    assert "abstractor_owner:" in services["migrate"]["environment"]["ABSTRACTOR_DATABASE_URL"]
    assert "deploy" not in services["worker"]  # the worker needs no GPU


def test_compose_vllm_gets_a_gpu_and_read_only_weights(compose: dict[str, Any]) -> None:
    vllm = compose["services"]["vllm"]
    assert vllm["entrypoint"] == ["vllm", "serve"]
    assert vllm["command"][0].startswith("/models/")
    assert "--served-model-name=abstractor" in vllm["command"]
    assert any(a.startswith("--structured-outputs-config=") for a in vllm["command"])
    (mount,) = vllm["volumes"]
    assert mount.endswith(":/models:ro")
    (device,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert vllm["shm_size"]
