"""manifests/webhook/: the admission webhook's objects agree with the code that serves it
(paths, names, port), refuse by default, leave the control plane alone, and are valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import validate_manifests
from vulcan_operator import GROUP, VERSION, kinds, webhook
from vulcan_operator.handlers import admission

REPO = Path(__file__).resolve().parents[2]
WEBHOOK = REPO / "manifests" / "webhook"
NAMESPACE = "vulcan-system"
PORT = 9443


def objects(folder: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted((WEBHOOK / folder).glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def only(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objs if o["kind"] == kind]
    return found


def test_the_objects_are_valid() -> None:
    validate_manifests([*objects("component"), *objects("cert-manager")])


def test_one_webhook_per_kind_at_its_handlers_path() -> None:
    config = only(objects("component"), "ValidatingWebhookConfiguration")
    assert config["metadata"]["name"] == webhook.CONFIGURATION
    by_plural = {h["rules"][0]["resources"][0]: h for h in config["webhooks"]}
    assert set(by_plural) == {k.plural for k in kinds.ALL}
    for plural, hook in by_plural.items():
        service = hook["clientConfig"]["service"]
        assert (service["name"], service["namespace"]) == (webhook.SERVICE, NAMESPACE)
        # Kopf routes `<PATH>/<handler id>`; the handler ids are the plurals.
        assert service["path"] == f"{webhook.PATH}/{plural}"
        (rule,) = hook["rules"]
        assert rule["apiGroups"] == [GROUP] and rule["apiVersions"] == [VERSION]
        assert set(rule["operations"]) == {"CREATE", "UPDATE"}
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert 1 <= hook["timeoutSeconds"] <= 10
        assert hook["admissionReviewVersions"] == ["v1"]
        (expression,) = hook["namespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert expression["operator"] == "NotIn"
        assert set(expression["values"]) == {"kube-system", NAMESPACE}
        assert "caBundle" not in hook["clientConfig"]  # the operator or cert-manager fills it
    assert admission.MAX_LINES >= 1


def test_the_service_reaches_every_replica_on_the_webhook_port() -> None:
    service = only(objects("component"), "Service")
    assert service["metadata"]["name"] == webhook.SERVICE
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "vulcan-operator",
        "app.kubernetes.io/component": "operator",
    }
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (443, "webhook")
    patches = (WEBHOOK / "component" / "kustomization.yaml").read_text()
    assert f"--admission-port={PORT}" in patches
    assert f"containerPort: {PORT}" in patches


def test_the_rights_are_the_ca_secret_and_the_one_configuration() -> None:
    objs = objects("component")
    role = only(objs, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [webhook.CA_SECRET],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]
    cluster_role = only(objs, "ClusterRole")
    assert cluster_role["rules"] == [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "resourceNames": [webhook.CONFIGURATION],
            "verbs": ["get", "patch"],
        }
    ]
    for binding in (only(objs, "RoleBinding"), only(objs, "ClusterRoleBinding")):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "vulcan-operator", "namespace": NAMESPACE}
        ]


def test_cert_manager_certifies_the_services_names() -> None:
    certificate = only(objects("cert-manager"), "Certificate")
    assert set(certificate["spec"]["dnsNames"]) <= set(webhook.hostnames(NAMESPACE))
    assert certificate["spec"]["dnsNames"][0] == webhook.hostnames(NAMESPACE)[0]
    patches = (WEBHOOK / "cert-manager" / "kustomization.yaml").read_text()
    assert f"secretName: {certificate['spec']['secretName']}" in patches
    assert f"{NAMESPACE}/{certificate['metadata']['name']}" in patches  # inject-ca-from


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_manifests_with_the_components() -> None:
    # A kustomization beside manifests/, as the README shows (kustomize refuses one inside).
    overlay = REPO / ".webhook-overlay-test"
    overlay.mkdir(exist_ok=True)
    try:
        (overlay / "kustomization.yaml").write_text(
            "resources: [../manifests]\n"
            "components: [../manifests/webhook/component, ../manifests/webhook/cert-manager]\n"
        )
        built = subprocess.run(
            ["kubectl", "kustomize", str(overlay)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    finally:
        shutil.rmtree(overlay)
    docs = [d for d in yaml.safe_load_all(built) if d]
    deployment = only(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert f"--admission-port={PORT}" in container["args"]
    assert "--admission-cert-dir=/etc/vulcan-webhook" in container["args"]
    assert {"name": "webhook", "containerPort": PORT, "protocol": "TCP"} in container["ports"]
    config = only(docs, "ValidatingWebhookConfiguration")
    inject = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert inject == f"{NAMESPACE}/vulcan-operator-webhook"
    policy = only(docs, "NetworkPolicy")
    assert {"ports": [{"port": "webhook", "protocol": "TCP"}]} in policy["spec"]["ingress"]
