"""Splits a rendered chart into core Kubernetes objects and custom resources, and checks the latter.

kubernetes-validate knows the core API only: it merely warns on a custom resource (KEDA's
ScaledObject and TriggerAuthentication here) and exits 0. So the core objects go to a file that
`kubernetes-validate --strict` checks, and every custom resource is checked here against a schema
of our own in crd-schemas/ (named <group>_<version>_<Kind>.json); a custom resource without such a
schema is an error, never a silent pass.

Usage: split_manifests.py RENDERED.yaml CORE_OUT.yaml   (exit 1 on any invalid custom resource)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"
# API groups kubernetes-validate has schemas for: the core API ("v1") and the *.k8s.io groups in use.
CORE_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io"}


def group_of(api_version: str) -> str:
    """The API group of an apiVersion ("" for the core group)."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def check_custom(doc: dict[str, Any]) -> list[str]:
    """Errors of one custom resource against its schema (an error too when there is no schema)."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    name = doc.get("metadata", {}).get("name", "?")
    path = SCHEMAS / f"{api_version.replace('/', '_')}_{kind}.json"
    if not path.is_file():
        return [f"{kind}/{name}: no schema {path.name} for custom resource {api_version}"]
    validator = Draft7Validator(json.loads(path.read_text()))
    return [
        f"{kind}/{name}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def main(rendered: Path, core_out: Path) -> int:
    """Write the core objects to core_out, check the custom ones, report and return the exit status."""
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    core = [d for d in docs if group_of(d["apiVersion"]) in CORE_GROUPS]
    custom = [d for d in docs if group_of(d["apiVersion"]) not in CORE_GROUPS]
    core_out.write_text(yaml.safe_dump_all(core, sort_keys=False))
    errors = [msg for d in custom for msg in check_custom(d)]
    for d in custom:
        status = "FAILED" if any(m.startswith(f"{d['kind']}/") for m in errors) else "passed"
        print(f"custom resource {d['kind']}/{d['metadata']['name']} ({d['apiVersion']}): {status} (own schema)")
    for msg in errors:
        print(f"ERROR {msg}", file=sys.stderr)
    print(f"{len(core)} core objects for kubernetes-validate, {len(custom)} custom resources checked here")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
