"""The validating admission webhook, in the real operator (Kopf's webhook server) against the
emulator: real AdmissionReview v1 requests over HTTPS, the server's certificate checked with
the CA the operator wrote into the ValidatingWebhookConfiguration, for the Service's name.

- every file of tests/data/invalid is refused with the field and the rule `validate` names;
- every example and valid resource is admitted;
- a held-out set of dangerous resources (storage overrides, foreign restore locations and
  backups, oversize problems, images outside the allow-list) is refused in plain words;
- warnings for what is legal but unwise; an update that leaves the spec alone is admitted;
- the generated CA is made once and kept: a restart and a second replica reuse it;
- with two replicas under Kopf peering, the standby answers too.
"""

from __future__ import annotations

import base64
import copy
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.emulator import Emulator, make_crd
from tests.support import admission
from tests.support.admission import NAMESPACE, Client
from tests.support.crds import EXAMPLES, ids
from tests.support.kopf_runner import OperatorRunner
from tests.support.plugin import kubeconfig
from vulcan_operator import webhook
from vulcan_operator.cli.validate import validate_files
from vulcan_operator.main import make_registry
from vulcan_operator.solver.loader import MAX_PROBLEM_BYTES

REPO = Path(__file__).resolve().parents[2]
INVALID = sorted((REPO / "tests" / "data" / "invalid").glob("*.yaml"))
OURS = set(admission.PLURALS)
Obj = dict[str, Any]


def documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def expectation(path: Path) -> str:
    """The file's '# expect:' text without its '<Kind>/<name>: ' (the webhook's message is
    about the object under review)."""
    text = path.read_text().splitlines()[0].removeprefix("# expect: ")
    head, _, rest = text.partition(": ")
    return rest if "/" in head and " " not in head else text


def refusal(response: Obj) -> str:
    assert response["allowed"] is False, response
    message: str = response["status"]["message"]
    return message


@pytest.fixture
async def client(emulator: Emulator, kube_config: Any) -> AsyncIterator[Client]:
    """One replica serving the webhook, with a generated CA; the RBAC audit at the end."""
    admission.install(emulator)
    mark = emulator.mark()
    port = admission.free_port()
    runner = await admission.start(emulator, port)
    client = await admission.serving(emulator, port)
    yield client
    await client.close()
    await runner.stop()
    assert admission.audit(emulator, mark) == []


# -- the invalid set and the valid set -------------------------------------------------------
async def test_every_invalid_file_is_refused_naming_the_field(
    emulator: Emulator, client: Client
) -> None:
    wrong = []
    for path in INVALID:
        docs = documents(path)
        ours = [d for d in docs if not (isinstance(d, dict) and d.get("kind") == "ConfigMap")]
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                # Applied first, as `kubectl apply -f` does (replacing another file's).
                meta = doc["metadata"]
                if emulator.get("configmaps", meta["namespace"], meta["name"]) is not None:
                    emulator.delete("configmaps", meta["namespace"], meta["name"])
                emulator.create(doc)
        assert len(ours) == 1, path.name
        (doc,) = ours
        message = refusal(await client.review(doc))
        if not isinstance(doc, dict):
            # The API server never sends one; Kopf's server answers 500, which refuses it.
            assert message == "Internal Server Error"
            continue
        # What `vulcan-operator validate` says of the file, line for line.
        said = [line.split(": ", 2)[2] for line in validate_files([path])[0]]
        if expectation(path) not in message or message != "; ".join(said):
            wrong.append(f"{path.name}: {message}")
    assert wrong == []


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
async def test_every_valid_resource_is_admitted(path: Path, client: Client) -> None:
    docs = [d for d in documents(path) if d.get("kind") in OURS]
    assert docs or path.name == "argocd-application.yaml", path.name
    for doc in docs:
        response = await client.review(doc)
        assert response["allowed"] is True, (path.name, response.get("status"))


# -- held-out dangerous resources ------------------------------------------------------------
S3_STORE = {
    "bucket": "vulcan-backups",
    "prefix": "database/",
    "credentialsSecretRef": {"name": "s3-creds"},
}
S3_ENGINE: Obj = {
    "apiVersion": "vulcan-engine.com/v1alpha1",
    "kind": "VulcanEngine",
    "metadata": {"name": "prod", "namespace": "vulcan"},
    "spec": {
        "version": "2.0.0",
        "backup": {"storage": {"s3": S3_STORE}},
        "solver": {"maxWorkers": 8, "maxMemoryMB": 16384},
    },
}
CHECKSUM = "9f" * 32
OWN = "s3://vulcan-backups/database/vulcan/prod/vulcan_20261129_020000.dump"


def restore(**spec: Any) -> Obj:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanRestore",
        "metadata": {"name": "r1", "namespace": "vulcan"},
        "spec": {"engineRef": {"name": "prod"}, **spec},
    }


def problem(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "SchedulingProblem",
        "metadata": {"name": name, "namespace": "vulcan"},
        "spec": {"engineRef": {"name": "prod"}, **spec},
    }


INLINE = {
    "machines": [{"name": "m1"}],
    "jobs": [{"name": "j1", "tasks": [{"name": "t1", "duration": 5, "machines": ["m1"]}]}],
}
DANGEROUS: list[tuple[str, Obj, list[str]]] = [
    (
        "backup-into-a-foreign-bucket",
        {
            "apiVersion": "vulcan-engine.com/v1alpha1",
            "kind": "VulcanBackup",
            "metadata": {"name": "b1", "namespace": "vulcan"},
            "spec": {
                "engineRef": {"name": "prod"},
                "storage": {
                    "s3": {
                        "bucket": "exfil",
                        "endpoint": "https://198.51.100.9:9000",
                        "credentialsSecretRef": {"name": "stolen"},
                    }
                },
            },
        },
        ["spec.storage: not allowed", "only where its VulcanEngine's spec.backup.storage says"],
    ),
    (
        "backup-onto-another-claim",
        {
            "apiVersion": "vulcan-engine.com/v1alpha1",
            "kind": "VulcanBackup",
            "metadata": {"name": "b2", "namespace": "vulcan"},
            "spec": {"engineRef": {"name": "prod"}, "storage": {"pvc": {"claimName": "other"}}},
        },
        ["spec.storage: not allowed"],
    ),
    (
        "restore-from-another-bucket",
        restore(location="s3://someone-else/database/vulcan/prod/vulcan_1.dump", checksum=CHECKSUM),
        ["spec.location: bucket 'someone-else' is not the bucket of VulcanEngine 'prod'"],
    ),
    (
        "restore-from-another-engines-folder",
        restore(
            location="s3://vulcan-backups/database/vulcan/other/vulcan_1.dump", checksum=CHECKSUM
        ),
        ["spec.location: not in a backup folder of VulcanEngine 'prod'", "allowed: s3://"],
    ),
    (
        "restore-from-a-volume-claim",
        restore(location="pvc://data/vulcan/prod/vulcan_1.dump", checksum=CHECKSUM),
        ["spec.location: VulcanEngine 'prod' keeps its backups in S3"],
    ),
    (
        "restore-a-plain-sql-file",
        restore(location="s3://vulcan-backups/database/vulcan/prod/dump.sql.gz", checksum=CHECKSUM),
        ["spec.location: 'dump.sql.gz' is not a backup file of this operator"],
    ),
    (
        "restore-another-engines-backup",
        restore(backupRef={"name": "others-backup"}),
        ["spec.backupRef: VulcanBackup 'others-backup' is a backup of VulcanEngine 'other'"],
    ),
    (
        "restore-without-checksum",
        restore(location=OWN),
        ["spec.checksum", "required with spec.location"],
    ),
    (
        "engine-on-anothers-bucket",
        {**S3_ENGINE, "metadata": {"name": "thief", "namespace": "elsewhere"}},
        [
            "spec.backup.storage: S3 bucket 'vulcan-backups' with prefix 'database/' shares keys "
            "with prefix 'database/' of VulcanEngine 'vulcan/prod' (created earlier)",
        ],
    ),
    (
        "engine-on-a-prefix-inside-anothers",
        {
            **S3_ENGINE,
            "metadata": {"name": "nested", "namespace": "vulcan"},
            "spec": {
                **S3_ENGINE["spec"],
                "backup": {"storage": {"s3": {**S3_STORE, "prefix": "database/vulcan/"}}},
            },
        },
        ["shares keys with prefix 'database/' of VulcanEngine 'vulcan/prod'"],
    ),
    (
        "problem-with-1001-machines",
        problem(
            "wide",
            machines=[{"name": f"m{i}"} for i in range(1001)],
            jobs=INLINE["jobs"],
        ),
        ["spec.machines: List should have at most 1000 items"],
    ),
    (
        "problem-over-the-engines-caps",
        problem("greedy", **INLINE, solver={"numWorkers": 64, "memoryLimitMB": 65536}),
        [
            "spec.solver.numWorkers: 64 is more than engine 'prod' allows (8, its "
            "spec.solver.maxWorkers)",
            "spec.solver.memoryLimitMB: 65536 is more than engine 'prod' allows (16384",
        ],
    ),
    (
        "problem-from-an-oversize-configmap",
        problem("big", problemRef={"configMapName": "too-big"}),
        [f"more than the {MAX_PROBLEM_BYTES}"],
    ),
    (
        "problem-from-a-yaml-alias-bomb",
        problem("bomb", problemRef={"configMapName": "bomb"}),
        ["spec.problemRef (ConfigMap bomb, key problem.yaml)", "YAML aliases"],
    ),
]
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"
)


async def test_dangerous_resources_are_refused_in_plain_words(
    emulator: Emulator, client: Client
) -> None:
    emulator.create(S3_ENGINE)
    emulator.create(
        {
            "apiVersion": "vulcan-engine.com/v1alpha1",
            "kind": "VulcanBackup",
            "metadata": {"name": "others-backup", "namespace": "vulcan"},
            "spec": {"engineRef": {"name": "other"}},
        }
    )
    for name, text in (("too-big", "#" * (MAX_PROBLEM_BYTES + 1)), ("bomb", BOMB)):
        emulator.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "vulcan"},
                "data": {"problem.yaml": text},
            }
        )
    for case, obj, words in DANGEROUS:
        message = refusal(await client.review(obj))
        for word in words:
            assert word in message, f"{case}: {message}"
        assert "198.51.100.9" not in message and "Traceback" not in message, case
    # The same restore, from the engine's own folder, is admitted; and so is the engine
    # itself, and another on its own prefix of the bucket.
    assert (await client.review(restore(location=OWN, checksum=CHECKSUM)))["allowed"] is True
    assert (await client.review(S3_ENGINE))["allowed"] is True
    own = {**S3_ENGINE, "metadata": {"name": "staging", "namespace": "vulcan"}}
    own["spec"] = {**S3_ENGINE["spec"], "backup": {"storage": {"s3": {**S3_STORE, "prefix": "s/"}}}}
    assert (await client.review(own))["allowed"] is True


async def test_images_outside_the_allow_list_are_refused(
    emulator: Emulator, kube_config: Any
) -> None:
    admission.install(emulator)
    port = admission.free_port()
    runner = await admission.start(
        emulator, port, allowed_images=("registry.example.com/vulcan/", "ghcr.io/vulcan-engine")
    )
    client = await admission.serving(emulator, port)
    try:
        engine = copy.deepcopy(S3_ENGINE)
        engine["spec"]["image"] = "registry.example.com/vulcan/engine"
        assert (await client.review(engine))["allowed"] is True
        for image in ("docker.io/evil/engine", "registry.example.com/vulcanx/e", "ghcr.io/vulcan"):
            engine["spec"]["image"] = image
            message = refusal(await client.review(engine))
            assert f"spec.image: image '{image}' is not allowed" in message
            assert "allowed: images under registry.example.com/vulcan/, ghcr.io/vulcan-engine" in (
                message
            )
    finally:
        await client.close()
        await runner.stop()


# -- warnings, updates -----------------------------------------------------------------------
async def test_warnings_for_what_is_legal_but_unwise(emulator: Emulator, client: Client) -> None:
    engine = copy.deepcopy(S3_ENGINE)
    engine["spec"]["ingress"] = {
        "enabled": True,
        "host": "vulcan.example.com",
        "className": "traefik",
    }
    response = await client.review(engine)
    assert response["allowed"] is True
    (warning,) = response["warnings"]
    assert "spec.networkPolicy.ingressController admits only the namespace ingress-nginx" in (
        warning
    )
    engine["spec"]["networkPolicy"] = {"ingressNamespaces": ["traefik"]}
    assert "warnings" not in await client.review(engine)

    near = problem("near", machines=[{"name": f"m{i}"} for i in range(800)], jobs=INLINE["jobs"])
    response = await client.review(near)
    assert response["allowed"] is True
    assert response["warnings"] == [
        "spec.machines: 800 of at most 1000: near the size limit; split the problem before it "
        "grows past it"
    ]
    far = problem("far", machines=[{"name": f"m{i}"} for i in range(799)], jobs=INLINE["jobs"])
    assert "warnings" not in await client.review(far)


async def test_an_update_that_keeps_the_spec_is_admitted_even_when_invalid(
    client: Client,
) -> None:
    # An object made before the webhook existed must still take Kopf's finalizer and be
    # deletable: only a change of the spec is reviewed.
    bad = documents(REPO / "tests" / "data" / "invalid" / "ve-autoscaling-min-gt-max.yaml")[0]
    touched = copy.deepcopy(bad)
    touched["metadata"]["finalizers"] = ["vulcan-engine.com/finalizer"]
    assert (await client.review(touched, old=bad, operation="UPDATE"))["allowed"] is True
    changed = copy.deepcopy(touched)
    changed["spec"]["replicas"] = 4
    message = refusal(await client.review(changed, old=bad, operation="UPDATE"))
    assert "spec.autoscaling" in message


async def test_a_path_without_a_handler_is_refused_not_admitted(client: Client) -> None:
    # Kopf admits what no handler matches; a misrouted webhook configuration fails closed.
    valid = documents(REPO / "tests" / "data" / "valid" / "engine-minimal.yaml")[0]
    for path in ("/validate/vulcanengine", "/validate/", "/validate/VulcanEngines", "/other/x"):
        response = await client.review(valid, path=path)
        assert response["allowed"] is False, path
    assert (await client.review(valid))["allowed"] is True


# -- the certificate -------------------------------------------------------------------------
async def test_the_ca_is_made_once_and_kept_and_only_it_is_trusted(
    emulator: Emulator, kube_config: Any
) -> None:
    admission.install(emulator)
    port = admission.free_port()
    runner = await admission.start(emulator, port)
    client = await admission.serving(emulator, port)
    try:
        secret = emulator.get("secrets", NAMESPACE, webhook.CA_SECRET)
        assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "vulcan-operator"
        first = admission.ca_bundle(emulator)
        assert first == base64.b64decode(secret["data"]["ca.crt"])
        # Another CA is not trusted: the client refuses the server's certificate.
        other, _ = webhook.new_ca()
        stranger = Client(port, other)
        try:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await stranger.review(S3_ENGINE)
        finally:
            await stranger.close()
        # A restart (a new pod) signs a new serving certificate with the same CA.
        await runner.stop()
        runner.replace_registry(make_registry(admission.settings(port)))
        await runner.start()
        assert emulator.get("secrets", NAMESPACE, webhook.CA_SECRET)["data"] == secret["data"]
        assert admission.ca_bundle(emulator) == first
        await client.close()
        client = await admission.serving(emulator, port)
        assert (await client.review(S3_ENGINE))["allowed"] is True
    finally:
        await client.close()
        await runner.stop()


async def test_a_secret_without_the_ca_is_never_overwritten(
    emulator: Emulator, kube_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    admission.install(emulator)
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": webhook.CA_SECRET, "namespace": NAMESPACE},
            "data": {"something": base64.b64encode(b"else").decode()},
        }
    )
    runner = OperatorRunner(emulator.url, make_registry(admission.settings(admission.free_port())))
    with pytest.raises(Exception, match="One or more handlers failed"):
        await runner.start()
    assert (
        f"Secret {NAMESPACE}/{webhook.CA_SECRET} has no ca.crt and ca.key: delete it to let the "
        "operator make a new CA, or give --admission-cert-dir"
    ) in caplog.text
    secret = emulator.get("secrets", NAMESPACE, webhook.CA_SECRET)
    assert set(secret["data"]) == {"something"}
    assert not runner.running  # the operator does not start without its webhook


async def test_a_given_certificate_folder_is_served(
    emulator: Emulator, kube_config: Any, tmp_path: Path
) -> None:
    # --admission-cert-dir (cert-manager's Secret, mounted): its files are served as they
    # are, and the webhook configuration is left to cert-manager's CA injector.
    ca, ca_key = webhook.new_ca()
    cert, key = webhook.issue(ca, ca_key, webhook.hostnames(NAMESPACE))
    for name, data in (("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)):
        (tmp_path / name).write_bytes(data)
    port = admission.free_port()
    runner = await admission.start(emulator, port, admission_cert_dir=str(tmp_path))
    client = Client(port, ca)
    try:
        await emulator.wait_for(lambda: _answers(client), timeout=60, interval=0.05)
        assert (await client.review(S3_ENGINE))["allowed"] is True
        assert emulator.get("secrets", NAMESPACE, webhook.CA_SECRET) is None
    finally:
        await client.close()
        await runner.stop()


async def _answers(client: Client) -> bool:
    try:
        await client.review({"apiVersion": "v1", "kind": "Probe"})
    except (aiohttp.ClientConnectorError, ssl.SSLError):
        return False
    return True


# -- two replicas ----------------------------------------------------------------------------
async def test_the_standby_replica_answers_too(emulator: Emulator, kube_config: Any) -> None:
    emulator.create(make_crd("kopf.dev", "ClusterKopfPeering", scope="Cluster", status=False))
    emulator.create(
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": "vulcan-operator"},
        }
    )
    admission.install(emulator)
    mark = emulator.mark()
    ports = [admission.free_port(), admission.free_port()]
    runners = [
        admission.PeeringRunner(
            emulator.url, make_registry(admission.settings(port)), identity=f"replica-{i}"
        )
        for i, port in enumerate(ports)
    ]
    clients: list[Client] = []
    try:
        for runner in runners:
            await runner.start()
        # Both are peers of one peering: one is active, the other stands by.
        await emulator.wait_for(
            lambda: (
                set(emulator.get("clusterkopfpeerings", None, "vulcan-operator")["status"])
                == {"replica-0", "replica-1"}
            ),
            timeout=60,  # a deadline only: two operators start slowly with both cores busy
        )
        for port in ports:
            clients.append(await admission.serving(emulator, port))
        bad = documents(REPO / "tests" / "data" / "invalid" / "vb-storage-s3-override.yaml")[0]
        for client in clients:
            assert (await client.review(S3_ENGINE))["allowed"] is True
            assert "spec.storage: not allowed" in refusal(await client.review(bad))
        # One CA for both (made by whichever came first), each its own serving certificate.
        assert len(emulator.list("secrets", NAMESPACE)) == 1
    finally:
        for client in clients:
            await client.close()
        for runner in runners:
            await runner.stop()
    assert admission.audit(emulator, mark) == []


# -- the same checks at reconcile, and the console script ------------------------------------
async def test_the_reconcile_refuses_an_image_outside_the_allow_list(
    emulator: Emulator, run_operator: Any
) -> None:
    # An engine made while the webhook was off (or before the allow-list): the reconcile
    # refuses it with the webhook's words and touches nothing.
    settings = admission.settings(0, allowed_images=("registry.example.com/vulcan",))
    await run_operator(make_registry(settings))
    engine = copy.deepcopy(S3_ENGINE)
    engine["spec"]["image"] = "docker.io/evil/engine"
    emulator.create(engine)
    ready = await emulator.wait_for(
        lambda: next(
            c
            for c in emulator.get("vulcanengines", "vulcan", "prod")["status"]["conditions"]
            if c["type"] == "Ready"
        ),
        timeout=60,
    )
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.image: image 'docker.io/evil/engine' is not allowed" in ready["message"]
    assert emulator.get("deployments", "vulcan", "prod") is None


async def test_run_command_serves_the_webhook(emulator: Emulator, tmp_path: Path) -> None:
    # `vulcan-operator run --admission-port`: the real console script in its own process.
    admission.install(emulator)
    port = admission.free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig(tmp_path / "config", emulator.url)),
        "VULCAN_METRICS_PORT": str(admission.free_port()),
        "POD_NAMESPACE": NAMESPACE,
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    script = Path(sys.executable).parent / "vulcan-operator"
    proc = subprocess.Popen(  # noqa: ASYNC220 (runs beside the test; awaited by polling)
        [str(script), "run", "--standalone", "--liveness=", f"--admission-port={port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = await admission.serving(emulator, port, within=30)
        try:
            bad = documents(REPO / "tests" / "data" / "invalid" / "ve-cron-garbage.yaml")[0]
            assert "spec.maintenance.schedule" in refusal(await client.review(bad))
            assert (await client.review(S3_ENGINE))["allowed"] is True
        finally:
            await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output[-3000:]
