"""The Kubernetes manifests build (kustomize) and keep the rules compose keeps."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML comes with mlflow, its stubs do not

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
TARGETS = ["base", "overlays/gpu"]


def kustomize_major(kubectl: str) -> int:
    out = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True)
    found = re.search(r"Kustomize Version: v(\d+)", out.stdout)
    return int(found.group(1)) if found else 0


def build(target: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it builds kustomizations offline)")
    if kustomize_major(kubectl) < 4:
        # Debian's kubernetes-client (1.20) embeds kustomize v2, which predates `labels` and
        # regex patch targets.
        pytest.skip("kubectl's built-in kustomize is older than v4: need kubectl >= 1.21")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / target)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.mark.parametrize("target", TARGETS)
def test_manifests_build_with_probes_non_root_and_no_secret(target: str) -> None:
    docs = build(target)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}

    for name in ("mlflow", "training", "worker", "serving", "frontend"):
        assert ("Deployment", name) in kinds
    for name in ("mlflow", "training", "serving", "frontend"):
        assert ("Service", name) in kinds
    # Secrets are created by the operator (docs/deployment.md), never shipped here.
    assert not [d for d in docs if d["kind"] == "Secret"]
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert "readinessProbe" in container, doc["metadata"]["name"]
            assert container["image"].startswith("registry.example.com/chimp:")


def test_gpu_overlay_puts_worker_and_serving_on_gpus() -> None:
    deployments = {
        d["metadata"]["name"]: d for d in build("overlays/gpu") if d["kind"] == "Deployment"
    }
    for name in ("worker", "serving"):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["image"].endswith("-gpu")
    training = deployments["training"]["spec"]["template"]["spec"]["containers"][0]
    assert not training["image"].endswith("-gpu")


def test_s3_is_the_seaweedfs_of_compose_with_its_one_shot_setup() -> None:
    docs = build("base")
    compose = yaml.safe_load((DEPLOY.parents[1] / "compose.yaml").read_text())["services"]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    server = by_kind[("StatefulSet", "seaweedfs")]["spec"]["template"]["spec"]
    setup = by_kind[("Job", "s3-setup")]["spec"]["template"]["spec"]
    assert server["containers"][0]["image"] == compose["seaweedfs"]["image"]
    assert setup["containers"][0]["image"] == compose["s3-setup"]["image"]
    assert "readinessProbe" in server["containers"][0]
    assert server["securityContext"]["runAsNonRoot"] is True
    # Credentials only from the Secret the operator creates.
    for container in (server["containers"][0], setup["containers"][0]):
        for var in container["env"]:
            assert "value" not in var, var["name"]
    ports = {p["port"] for p in by_kind[("Service", "seaweedfs")]["spec"]["ports"]}
    assert {9000, 9001} <= ports
    config = by_kind[("ConfigMap", next(n for k, n in by_kind if k == "ConfigMap"))]["data"]
    assert config["CHIMP_DATASTORE__S3__ENDPOINT_URL"] == "http://seaweedfs:9000"
    assert config["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs:9000"
    rendered = yaml.safe_dump_all(docs).lower()
    assert "minio" not in rendered
