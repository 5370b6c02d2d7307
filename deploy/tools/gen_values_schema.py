"""Writes helm/abstractor/values.schema.json (run after changing values.yaml's shape).

The schema is kept as Python so its repeated pieces (probes, PDBs, resources) are defined once;
the JSON file is what Helm reads and what is committed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHART = Path(__file__).resolve().parents[2] / "helm" / "abstractor"

STR: dict[str, Any] = {"type": "string"}
NONEMPTY: dict[str, Any] = {"type": "string", "minLength": 1}
BOOL: dict[str, Any] = {"type": "boolean"}
OBJ: dict[str, Any] = {"type": "object"}
LIST_OBJ: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
PORT: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 65535}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
POSITIVE: dict[str, Any] = {"type": "integer", "minimum": 1}
QUANTITY: dict[str, Any] = {"type": ["string", "integer"], "pattern": r"^[0-9]+(\.[0-9]+)?([EPTGMK]i?|[mkMGTPE])?$"}
SECRET_KEY: dict[str, Any] = {"type": "string", "pattern": r"^[-._a-zA-Z0-9]+$"}
# A DNS-1123 name, or empty where the value is optional.
K8S_NAME: dict[str, Any] = {"type": "string", "pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$", "maxLength": 253}
ENV_LIST: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object", "required": ["name"], "properties": {"name": NONEMPTY}},
}
# Credentials come from Secrets only: these names may not be set as plain env or ConfigMap data.
SECRET_ENV = ["ABSTRACTOR_DATABASE_URL", "ABSTRACTOR_BROKER_URL", "ABSTRACTOR_ADMIN_TOKEN",
              "ABSTRACTOR_WEBHOOK_SECRET", "ABSTRACTOR_OPENAI_API_KEY"]  # fmt: skip


def obj(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    """A closed object: a misspelt key fails `helm lint` instead of being ignored."""
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = required
    return out


def image(tag_required: bool) -> dict[str, Any]:
    """An image reference: repository, tag or digest, pull policy."""
    return obj(
        ["repository"] + (["tag"] if tag_required else []),
        repository=NONEMPTY,
        tag=NONEMPTY if tag_required else STR,
        digest={"type": "string", "pattern": r"^(sha256:[a-f0-9]{64})?$"},
        pullPolicy={"enum": ["Always", "IfNotPresent", "Never"]},
    )


def resources() -> dict[str, Any]:
    """Kubernetes resource requests and limits."""
    quantities = {"type": "object", "additionalProperties": QUANTITY}
    return obj(requests=quantities, limits=quantities)


def probe(with_path: bool) -> dict[str, Any]:
    """Probe timings (and the HTTP path where the chart lets you choose it)."""
    props: dict[str, Any] = {"periodSeconds": POSITIVE, "failureThreshold": POSITIVE, "timeoutSeconds": POSITIVE}
    if with_path:
        props["path"] = {"type": "string", "pattern": "^/"}
    return obj(["periodSeconds", "failureThreshold"], **props)


def pdb() -> dict[str, Any]:
    """A PodDisruptionBudget: minAvailable or maxUnavailable, not both."""
    int_or_pct = {"type": ["integer", "string"], "pattern": r"^[0-9]+%?$"}
    schema = obj(["enabled"], enabled=BOOL, minAvailable=int_or_pct, maxUnavailable=int_or_pct)
    schema["not"] = {"required": ["minAvailable", "maxUnavailable"]}
    return schema


def scheduling() -> dict[str, Any]:
    """Node selector, tolerations, affinity and spread constraints of one workload."""
    return {
        "nodeSelector": {"type": "object", "additionalProperties": STR},
        "tolerations": LIST_OBJ,
        "affinity": OBJ,
        "topologySpreadConstraints": LIST_OBJ,
        "podAnnotations": {"type": "object", "additionalProperties": STR},
        "extraEnv": {
            **ENV_LIST,
            "items": {**ENV_LIST["items"], "properties": {"name": {**NONEMPTY, "not": {"enum": SECRET_ENV}}}},
        },
    }


def schema() -> dict[str, Any]:
    """The whole values schema."""
    sched = scheduling()
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "abstractor chart values",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "global": OBJ,
            "nameOverride": STR,
            "fullnameOverride": K8S_NAME,
            "image": image(tag_required=False),
            "imagePullSecrets": LIST_OBJ,
            "serviceAccount": obj(create=BOOL, name=K8S_NAME, annotations={"type": "object"}),
            "config": obj(
                environment={"enum": ["production", "test", "development"]},
                logLevel={"enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]},
                # Host header values (names, `*.suffix`, addresses, CIDRs) added to ABSTRACTOR_ALLOWED_HOSTS.
                allowedHosts={"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z0-9*.:/\[\]-]+$"}},
                extraEnv={
                    "type": "object",
                    "propertyNames": {"pattern": "^[A-Z_][A-Z0-9_]*$", "not": {"enum": SECRET_ENV}},
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
            ),
            "database": obj(
                ["existingSecret", "urlKey"],
                existingSecret={**K8S_NAME, "minLength": 1},
                urlKey=SECRET_KEY,
                migrationUrlKey={"type": "string", "pattern": r"^[-._a-zA-Z0-9]*$"},
                appRole={"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$"},
            ),
            "broker": obj(["existingSecret", "urlKey"], existingSecret={**K8S_NAME, "minLength": 1}, urlKey=SECRET_KEY),
            "admin": obj(
                ["existingSecret", "tokenKey"], existingSecret={**K8S_NAME, "minLength": 1}, tokenKey=SECRET_KEY
            ),
            "webhook": obj(existingSecret=K8S_NAME, secretKey=SECRET_KEY),
            "engine": obj(
                ["name", "model"],
                name={"enum": ["openai"]},
                openaiBaseUrl={"type": "string", "pattern": "^(https?://.+)?$"},
                model=NONEMPTY,
                apiKey=obj(existingSecret=K8S_NAME, key=SECRET_KEY),
            ),
            "podSecurityContext": OBJ,
            "securityContext": OBJ,
            "scratch": obj(tmpSizeLimit=QUANTITY, dataSizeLimit=QUANTITY),
            "api": obj(
                ["replicaCount", "port"],
                replicaCount=COUNT,
                port=PORT,
                resources=resources(),
                service=obj(
                    type={"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                    port=PORT,
                    annotations={"type": "object", "additionalProperties": STR},
                ),
                pdb=pdb(),
                autoscaling=obj(
                    enabled=BOOL,
                    minReplicas=POSITIVE,
                    maxReplicas=POSITIVE,
                    targetCPUUtilizationPercentage={"type": "integer", "minimum": 1, "maximum": 100},
                ),
                probes=obj(startup=probe(True), readiness=probe(True), liveness=probe(True)),
                **sched,
            ),
            "ingress": obj(
                enabled=BOOL,
                className=STR,
                host={"type": "string", "pattern": r"^([a-z0-9*]([-a-z0-9.]*[a-z0-9])?)?$"},
                annotations={"type": "object", "additionalProperties": STR},
                tls=obj(secretName=K8S_NAME),
                path={"type": "string", "pattern": "^/"},
            ),
            "worker": obj(
                ["replicaCount", "concurrency", "engineConcurrency"],
                replicaCount=COUNT,
                concurrency=POSITIVE,
                engineConcurrency=POSITIVE,
                resources=resources(),
                terminationGracePeriodSeconds=COUNT,
                pdb=pdb(),
                keda=obj(
                    enabled=BOOL,
                    minReplicaCount=COUNT,
                    maxReplicaCount=POSITIVE,
                    pollingInterval=POSITIVE,
                    cooldownPeriod=COUNT,
                    listName=NONEMPTY,
                    listLength=POSITIVE,
                    activationListLength=COUNT,
                    databaseIndex=COUNT,
                    auth=obj(existingSecret=K8S_NAME, addressKey=SECRET_KEY, passwordKey=SECRET_KEY),
                ),
                **sched,
            ),
            "migration": obj(enabled=BOOL, backoffLimit=COUNT, activeDeadlineSeconds=POSITIVE, resources=resources()),
            "vllm": obj(
                ["enabled", "image", "model", "gpu"],
                enabled=BOOL,
                replicaCount=COUNT,
                image=image(tag_required=True),
                port=PORT,
                model=obj(
                    ["dir", "servedName"],
                    dir={"type": "string", "pattern": r"^[A-Za-z0-9._-][A-Za-z0-9._/-]*$", "not": {"pattern": r"\.\."}},
                    servedName=NONEMPTY,
                    maxModelLen=POSITIVE,
                    gpuMemoryUtilization={"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    dtype={"enum": ["auto", "half", "float16", "bfloat16", "float", "float32"]},
                    structuredOutputsBackend={
                        "enum": ["xgrammar", "guidance"]
                    },  # not outlines: vllm_release.VLLM_BACKENDS
                    extraArgs={"type": "array", "items": STR},
                ),
                persistence=obj(
                    existingClaim=K8S_NAME,
                    size=QUANTITY,
                    storageClass=STR,
                    accessModes={
                        "type": "array",
                        "minItems": 1,
                        "items": {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]},
                    },
                ),
                gpu=obj(["resourceName", "count"], resourceName=NONEMPTY, count=POSITIVE),
                resources=resources(),
                shmSizeLimit=QUANTITY,
                runtimeClassName=K8S_NAME,
                strategy=OBJ,
                pdb=pdb(),
                probes=obj(startup=probe(False), readiness=probe(False), liveness=probe(False)),
                **{k: v for k, v in sched.items() if k != "topologySpreadConstraints"},
            ),
            "networkPolicy": obj(
                enabled=BOOL,
                ingressController=obj(namespaceSelector=OBJ, podSelector=OBJ),
                apiExtraFrom=LIST_OBJ,
                dns=obj(namespaceSelector=OBJ, podSelector=OBJ),
                postgres=obj(["port"], port=PORT, peers=LIST_OBJ),
                redis=obj(["port"], port=PORT, peers=LIST_OBJ),
                externalEngine=obj(["port"], port=PORT, peers=LIST_OBJ),
                webhookEgress=obj(peers=LIST_OBJ, ports={"type": "array", "items": PORT}),
            ),
        },
    }


def main() -> None:
    """Write the schema next to values.yaml."""
    (CHART / "values.schema.json").write_text(json.dumps(schema(), indent=2) + "\n")


if __name__ == "__main__":
    main()
