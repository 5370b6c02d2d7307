"""Properties of the rendered Helm chart that a platform team relies on (security, GPUs, hooks)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.deploy.conftest import (
    NAMESPACE,
    PRODUCTION_VALUES,
    REPO,
    Manifest,
    Rendered,
    containers,
    pod_specs,
    render,
)

FULLNAME = "abstractor"  # release "abstractor" of chart "abstractor"
SECRET_ENV = {
    "ABSTRACTOR_DATABASE_URL",
    "ABSTRACTOR_BROKER_URL",
    "ABSTRACTOR_ADMIN_TOKEN",
    "ABSTRACTOR_WEBHOOK_SECRET",
    "ABSTRACTOR_OPENAI_API_KEY",
    "VLLM_API_KEY",
}
# A URL with credentials in it, or a word that marks a credential, must never be a literal value.
CREDENTIAL_VALUE = re.compile(r"://[^/\s]*:[^@/\s]*@|password|passwd|secret|token", re.IGNORECASE)


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


def deployment_container(r: Rendered, component: str) -> Manifest:
    container: Manifest = r.get("Deployment", f"{FULLNAME}-{component}")["spec"]["template"]["spec"]["containers"][0]
    return container


# --- GPUs and vLLM ---------------------------------------------------------------------------


def test_vllm_pods_request_and_limit_one_gpu(rendered: Rendered) -> None:
    vllm = deployment_container(rendered, "vllm")
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_only_vllm_pods_ask_for_gpus(rendered: Rendered) -> None:
    # The workers call vLLM over HTTP (ABSTRACTOR_ENGINE=openai): a GPU there would sit idle.
    for where, spec in pod_specs(rendered):
        for c in containers(spec):
            wants_gpu = any("nvidia.com/gpu" in (c.get("resources", {}).get(k) or {}) for k in ("requests", "limits"))
            assert wants_gpu == where.endswith("-vllm"), where


def test_vllm_is_scheduled_on_gpu_nodes(production: Rendered) -> None:
    spec = production.get("Deployment", f"{FULLNAME}-vllm")["spec"]["template"]["spec"]
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["runtimeClassName"] == "nvidia"


def test_vllm_serves_weights_from_the_volume_with_structured_outputs(rendered: Rendered) -> None:
    deployment = rendered.get("Deployment", f"{FULLNAME}-vllm")
    spec = deployment["spec"]["template"]["spec"]
    vllm = spec["containers"][0]
    assert vllm["command"] == ["vllm", "serve"]
    assert vllm["args"][0].startswith("/models/")
    assert "--served-model-name=abstractor" in vllm["args"]
    so = [a for a in vllm["args"] if a.startswith("--structured-outputs-config=")]
    assert len(so) == 1
    assert json.loads(so[0].split("=", 1)[1])["backend"] == "xgrammar"
    env = env_of(vllm)
    assert env["HF_HUB_OFFLINE"]["value"] == "1"  # a missing file fails instead of downloading
    mounts = {m["name"]: m for m in vllm["volumeMounts"]}
    assert mounts["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}
    volumes = {v["name"]: v for v in spec["volumes"]}
    claim = volumes["models"]["persistentVolumeClaim"]["claimName"]
    if rendered.variant == "production":
        assert claim == "abstractor-models"  # the existing claim
    else:
        assert claim in {p["metadata"]["name"] for p in rendered.of_kind("PersistentVolumeClaim")}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert mounts["dshm"]["mountPath"] == "/dev/shm"


def test_vllm_probes_hit_health_with_a_startup_budget_for_a_7b_model(rendered: Rendered) -> None:
    vllm = deployment_container(rendered, "vllm")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = vllm["startupProbe"]
    # Loading ~15 GB of weights and capturing CUDA graphs: at least 10 minutes before liveness kicks in.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_workers_reach_the_charts_vllm_service(rendered: Rendered) -> None:
    config = rendered.get("ConfigMap", FULLNAME)["data"]
    service = rendered.get("Service", f"{FULLNAME}-vllm")
    port = service["spec"]["ports"][0]["port"]
    assert config["ABSTRACTOR_ENGINE"] == "openai"
    assert config["ABSTRACTOR_OPENAI_BASE_URL"] == f"http://{FULLNAME}-vllm:{port}/v1"
    assert config["ABSTRACTOR_OPENAI_MODEL"] == "abstractor"
    assert config["ABSTRACTOR_ENVIRONMENT"] == "production"
    assert deployment_container(rendered, "worker")["args"][0] == "worker"
    assert deployment_container(rendered, "api")["args"] == ["api", "--host", "0.0.0.0", "--port", "8000"]


# --- Pod security ----------------------------------------------------------------------------


def test_no_container_runs_as_root(rendered: Rendered) -> None:
    specs = pod_specs(rendered)
    assert {w.split("/")[1] for w, _ in specs} == {f"{FULLNAME}-{c}" for c in ("api", "worker", "vllm", "migrate")}
    for where, spec in specs:
        pod = spec.get("securityContext", {})
        for c in containers(spec):
            ctx = {**pod, **c.get("securityContext", {})}  # the container's settings win
            assert ctx.get("runAsNonRoot") is True, f"{where}/{c['name']}"
            assert isinstance(ctx.get("runAsUser"), int) and ctx["runAsUser"] != 0, f"{where}/{c['name']}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, f"{where}/{c['name']}"
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], f"{where}/{c['name']}"
            assert "add" not in c["securityContext"]["capabilities"], f"{where}/{c['name']}"
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, f"{where}/{c['name']}"


def test_root_filesystems_are_read_only_with_an_emptydir_tmp(rendered: Rendered) -> None:
    for where, spec in pod_specs(rendered):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(spec):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, f"{where}/{c['name']}"
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1, f"{where}/{c['name']} has no /tmp mount"
            assert "emptyDir" in volumes[tmp[0]["name"]], where
            home = [m for m in c["volumeMounts"] if m["mountPath"].startswith("/home/")]
            assert home and "emptyDir" in volumes[home[0]["name"]], f"{where}: HOME is not writable"


def test_no_pod_mounts_a_service_account_token(rendered: Rendered) -> None:
    for account in rendered.of_kind("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    for where, spec in pod_specs(rendered):
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["serviceAccountName"] in {a["metadata"]["name"] for a in rendered.of_kind("ServiceAccount")}


# --- Migrations ------------------------------------------------------------------------------


def test_migration_is_a_weighted_pre_install_pre_upgrade_hook(production: Rendered) -> None:
    job = production.get("Job", f"{FULLNAME}-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    job_weight = int(annotations["helm.sh/hook-weight"])
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    migrate = spec["containers"][0]
    assert migrate["args"] == ["migrate"]
    assert spec["restartPolicy"] == "Never"
    # It reads the owner's URL from the existing Secret, never from a value.
    url = env_of(migrate)["ABSTRACTOR_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "abstractor-database", "key": "migration-database-url"}
    assert "value" not in url
    # What the Job needs before it runs is itself a hook of lower weight (ordinary resources come later).
    for kind in ("ServiceAccount", "NetworkPolicy"):
        dep = production.get(kind, f"{FULLNAME}-migrate")["metadata"]["annotations"]
        assert set(dep["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert int(dep["helm.sh/hook-weight"]) < job_weight
    assert spec["serviceAccountName"] == f"{FULLNAME}-migrate"


def test_the_api_and_workers_do_not_run_migrations(rendered: Rendered) -> None:
    for component in ("api", "worker"):
        assert "migrate" not in deployment_container(rendered, component)["args"]
        assert "hook" not in str(rendered.get("Deployment", f"{FULLNAME}-{component}")["metadata"])


# --- Secrets ---------------------------------------------------------------------------------


def test_the_chart_renders_no_secret_and_inlines_no_credential(rendered: Rendered) -> None:
    assert rendered.of_kind("Secret") == []
    for where, spec in pod_specs(rendered):
        for c in containers(spec):
            for name, var in env_of(c).items():
                if name in SECRET_ENV:
                    assert "value" not in var, f"{where}: {name} inlined"
                    assert set(var["valueFrom"]) == {"secretKeyRef"}, f"{where}: {name}"
                elif "value" in var:
                    assert not CREDENTIAL_VALUE.search(str(var["value"])), f"{where}: {name}={var['value']!r}"
    for config in rendered.of_kind("ConfigMap"):
        assert not SECRET_ENV & set(config["data"])
        for key, value in config["data"].items():
            assert not CREDENTIAL_VALUE.search(value), f"ConfigMap {key}={value!r}"


def test_api_and_workers_read_every_credential_from_the_named_secrets(production: Rendered) -> None:
    expected = {
        "ABSTRACTOR_DATABASE_URL": {"name": "abstractor-database", "key": "database-url"},
        "ABSTRACTOR_BROKER_URL": {"name": "abstractor-redis", "key": "broker-url"},
        "ABSTRACTOR_ADMIN_TOKEN": {"name": "abstractor-admin", "key": "admin-token"},
        "ABSTRACTOR_WEBHOOK_SECRET": {"name": "abstractor-webhook", "key": "webhook-secret"},
        "ABSTRACTOR_OPENAI_API_KEY": {"name": "abstractor-vllm", "key": "api-key"},
    }
    for component in ("api", "worker"):
        env = env_of(deployment_container(production, component))
        assert {n: env[n]["valueFrom"]["secretKeyRef"] for n in expected} == expected
    vllm_key = env_of(deployment_container(production, "vllm"))["VLLM_API_KEY"]
    assert vllm_key["valueFrom"]["secretKeyRef"] == expected["ABSTRACTOR_OPENAI_API_KEY"]
    keda_auth = production.get("TriggerAuthentication", f"{FULLNAME}-worker-redis")
    assert {r["name"] for r in keda_auth["spec"]["secretTargetRef"]} == {"abstractor-redis-keda"}


# --- Network policies ------------------------------------------------------------------------


def _egress_peers(policy: Manifest, port: int) -> list[Manifest]:
    """Peers of the egress rules that open `port` (an empty list: any destination)."""
    rules = [r for r in policy["spec"]["egress"] if any(p["port"] == port for p in r["ports"])]
    assert rules, f"{policy['metadata']['name']} has no egress on {port}"
    return [peer for r in rules for peer in r.get("to", [])]


def test_network_policies_allow_only_the_designed_paths(production: Rendered) -> None:
    policies = {p["metadata"]["name"]: p for p in production.of_kind("NetworkPolicy")}
    assert set(policies) == {f"{FULLNAME}-{c}" for c in ("api", "worker", "vllm", "migrate")}
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        dns = [r for r in policy["spec"]["egress"] if {"protocol": "UDP", "port": 53} in r["ports"]]
        assert dns and dns[0]["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}

    def component(peer: Manifest) -> str | None:
        labels: dict[str, str] = peer.get("podSelector", {}).get("matchLabels", {})
        return labels.get("app.kubernetes.io/component")

    postgres, redis = [{"ipBlock": {"cidr": "10.20.0.0/24"}}], [{"ipBlock": {"cidr": "10.20.1.0/24"}}]

    api = policies[f"{FULLNAME}-api"]["spec"]
    (api_in,) = api["ingress"]
    controller = api_in["from"][0]
    assert controller["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert controller["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    assert api_in["ports"] == [{"protocol": "TCP", "port": 8000}]

    worker = policies[f"{FULLNAME}-worker"]
    assert worker["spec"]["ingress"] == []  # nothing connects to a worker
    assert _egress_peers(worker, 5432) == postgres
    assert _egress_peers(worker, 6379) == redis
    assert [component(p) for p in _egress_peers(worker, 8000)] == ["vllm"]
    allowed_ports = {p["port"] for r in worker["spec"]["egress"] for p in r["ports"]}
    assert allowed_ports == {53, 5432, 6379, 8000, 443}  # 443: the webhook receivers listed in values

    vllm = policies[f"{FULLNAME}-vllm"]["spec"]
    (vllm_in,) = vllm["ingress"]
    assert [component(p) for p in vllm_in["from"]] == ["worker"]
    assert {p["port"] for r in vllm["egress"] for p in r["ports"]} == {53}  # weights are local

    migrate = policies[f"{FULLNAME}-migrate"]
    assert _egress_peers(migrate, 5432) == postgres
    assert {p["port"] for r in migrate["spec"]["egress"] for p in r["ports"]} == {53, 5432}


def test_policies_select_the_pods_they_are_named_for(rendered: Rendered) -> None:
    labels = {
        w.split("/")[1]: d["spec"]["template"]["metadata"]["labels"]
        for w, d in ((f"{d['kind']}/{d['metadata']['name']}", d) for d in rendered.docs)
        if d["kind"] in {"Deployment", "Job"}
    }
    for policy in rendered.of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        target = labels[policy["metadata"]["name"]]
        assert selector.items() <= target.items()


# --- Labels, selectors, rollouts, scaling ----------------------------------------------------


def test_selectors_use_stable_labels_only(rendered: Rendered) -> None:
    stable = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
    for d in rendered.docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "abstractor"
        assert "app.kubernetes.io/version" in labels and "helm.sh/chart" in labels
    selectors = [d["spec"]["selector"]["matchLabels"] for d in rendered.docs if d["kind"] == "Deployment"]
    selectors += [d["spec"]["selector"] for d in rendered.of_kind("Service")]
    selectors += [d["spec"]["selector"]["matchLabels"] for d in rendered.of_kind("PodDisruptionBudget")]
    assert selectors
    for selector in selectors:
        assert set(selector) == stable


def test_pods_roll_when_their_configuration_changes(rendered: Rendered, helm: Path) -> None:
    def checksums(r: list[Manifest]) -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in r
            if d["kind"] == "Deployment"
        }

    before = checksums(rendered.docs)
    assert set(before) == {f"{FULLNAME}-{c}" for c in ("api", "worker", "vllm")}
    args = ["-f", str(PRODUCTION_VALUES)] if rendered.variant == "production" else []
    done = render(helm, *args, "--set", "config.logLevel=DEBUG")
    assert done.returncode == 0, done.stderr
    after = checksums([d for d in yaml.safe_load_all(done.stdout) if d])
    assert after[f"{FULLNAME}-api"] != before[f"{FULLNAME}-api"]
    assert after[f"{FULLNAME}-worker"] != before[f"{FULLNAME}-worker"]


def test_disruption_budgets_cover_every_long_running_component(rendered: Rendered) -> None:
    budgets = {b["metadata"]["name"]: b["spec"] for b in rendered.of_kind("PodDisruptionBudget")}
    assert set(budgets) == {f"{FULLNAME}-{c}" for c in ("api", "worker", "vllm")}
    assert budgets[f"{FULLNAME}-api"]["minAvailable"] == 1
    assert budgets[f"{FULLNAME}-vllm"]["maxUnavailable"] == 1  # a single GPU pod can still be drained


def test_keda_scales_workers_on_the_extractions_list_and_hpa_scales_the_api(production: Rendered) -> None:
    scaled = production.get("ScaledObject", f"{FULLNAME}-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == f"{FULLNAME}-worker"
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == "extractions"
    assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA metadata is map[string]string
    assert trigger["authenticationRef"]["name"] == f"{FULLNAME}-worker-redis"
    # The autoscalers own the replica counts: the Deployments leave them unset.
    assert "replicas" not in production.get("Deployment", f"{FULLNAME}-worker")["spec"]
    assert "replicas" not in production.get("Deployment", f"{FULLNAME}-api")["spec"]
    hpa = production.get("HorizontalPodAutoscaler", f"{FULLNAME}-api")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{FULLNAME}-api"}


def test_default_install_has_no_autoscaler_or_ingress(default: Rendered) -> None:
    assert not default.of_kind("ScaledObject") and not default.of_kind("HorizontalPodAutoscaler")
    assert not default.of_kind("Ingress")
    assert default.get("Deployment", f"{FULLNAME}-worker")["spec"]["replicas"] == 2


def test_ingress_routes_the_host_to_the_api_with_tls(production: Rendered) -> None:
    spec = production.get("Ingress", f"{FULLNAME}-api")["spec"]
    assert spec["tls"] == [{"hosts": ["abstractor.internal.example"], "secretName": "abstractor-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "abstractor.internal.example"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == f"{FULLNAME}-api"


# --- values.schema.json ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "complaint"),  # complaint: a regex, as helm 3 and helm 4 word the errors differently
    [
        pytest.param(["--set", "api.replicaCount=abc"], "replicaCount", id="string-replica-count"),
        pytest.param(["--set", "vllm.gpu.count=0"], "count", id="zero-gpus"),
        pytest.param(["--set", "config.extraEnv.ABSTRACTOR_DATABASE_URL=postgresql://u:p@h/db"],
                     "extraEnv|ABSTRACTOR_DATABASE_URL", id="credential-in-configmap"),
        pytest.param(["--set", "worker.extraEnv[0].name=ABSTRACTOR_ADMIN_TOKEN,worker.extraEnv[0].value=x"],
                     "worker[./]extraEnv[./]0[./]name", id="credential-in-env"),
        pytest.param(["--set", "api.replicaCont=2"], "replicaCont", id="misspelt-key"),
        pytest.param(["--set", "database.existingSecret="], "existingSecret", id="no-database-secret"),
        pytest.param(["--set", "ingress.enabled=true"], "ingress.host", id="ingress-without-host"),
    ],
)  # fmt: skip
def test_bad_values_are_refused(helm: Path, args: list[str], complaint: str) -> None:
    done = render(helm, *args)
    assert done.returncode != 0, f"accepted {args}"
    assert re.search(complaint, done.stderr), done.stderr


def test_notes_tell_how_to_create_the_first_tenant_key(helm: Path, tmp_path: Path) -> None:
    # `helm install --dry-run` needs a cluster; instead render NOTES.txt through a probe template
    # added to a copy of the chart (every file under templates/ is a named template).
    chart = tmp_path / "abstractor"
    shutil.copytree(REPO / "helm/abstractor", chart)
    (chart / "templates/zz-notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ include "abstractor/templates/NOTES.txt" . | toJson }}}\n'
    )
    done = subprocess.run(
        [str(helm), "template", "abstractor", str(chart), "-n", NAMESPACE, "-s", "templates/zz-notes-probe.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    notes = yaml.safe_load(done.stdout)["data"]["notes"]
    assert 'POST "$ABSTRACTOR_URL/v1/admin/tenants"' in notes
    assert 'POST "$ABSTRACTOR_URL/v1/admin/tenants/$TENANT_ID/keys"' in notes
    assert "Authorization: Bearer $ADMIN_TOKEN" in notes
    assert "get secret abstractor-admin" in notes
    assert "kubectl -n abstractor port-forward svc/abstractor-api" in notes


def _split_manifests() -> ModuleType:
    """deploy/tools/split_manifests.py, loaded in-process (a subprocess would re-import jsonschema)."""
    spec = importlib.util.spec_from_file_location("split_manifests", REPO / "deploy/tools/split_manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_keda_resources_are_checked_against_our_own_schemas(
    helm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # kubernetes-validate only warns on custom resources; scripts/check-helm relies on this checker.
    split = _split_manifests()
    done = render(helm_dir / "helm3", "-f", str(PRODUCTION_VALUES))
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    good = tmp_path / "good.yaml"
    good.write_text(done.stdout)
    assert split.main(good, tmp_path / "core.yaml") == 0
    core = [d for d in yaml.safe_load_all((tmp_path / "core.yaml").read_text()) if d]
    assert {d["kind"] for d in core}.isdisjoint({"ScaledObject", "TriggerAuthentication"})
    assert len(core) == len(docs) - 2
    assert "ScaledObject/abstractor-worker (keda.sh/v1alpha1): passed" in capsys.readouterr().out

    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    scaled["spec"]["triggers"][0]["metadata"] = {"listLength": 5}  # no list name, and a number
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([*docs, unknown]))
    assert split.main(bad, tmp_path / "core2.yaml") == 1
    errors = capsys.readouterr().err
    assert "listName" in errors and "listLength" in errors
    assert "no schema example.com_v1_Widget.json" in errors  # an unknown kind is an error, not a pass


def test_values_schema_is_generated_from_its_source() -> None:
    # values.schema.json is written by deploy/tools/gen_values_schema.py: the two must not drift.
    spec = importlib.util.spec_from_file_location("gen_values_schema", REPO / "deploy/tools/gen_values_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = json.loads((REPO / "helm/abstractor/values.schema.json").read_text())
    assert module.schema() == committed


def test_an_external_engine_replaces_the_charts_vllm(helm: Path) -> None:
    done = render(helm, "--set", "vllm.enabled=false", "--set", "engine.openaiBaseUrl=https://llm.internal/v1")
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert not [d for d in docs if d["metadata"]["name"].endswith(("-vllm", "-models"))]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["ABSTRACTOR_OPENAI_BASE_URL"] == "https://llm.internal/v1"
    worker = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == f"{FULLNAME}-worker")
    assert 443 in {p["port"] for r in worker["spec"]["egress"] for p in r["ports"]}
    refused = render(helm, "--set", "vllm.enabled=false")
    assert refused.returncode != 0
    assert "engine.openaiBaseUrl is required" in refused.stderr
