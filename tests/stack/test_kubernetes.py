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
