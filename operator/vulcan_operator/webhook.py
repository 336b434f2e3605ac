"""The admission webhook's HTTPS server and its certificate.

Every replica serves the webhook (Kopf runs its webhook server whether or not the replica is
the active peer), at `/validate/<plural>` on `run --admission-port`. The certificate comes
from `run --admission-cert-dir DIR` (`tls.crt`, `tls.key`, `ca.crt`: cert-manager's Secret,
mounted; cert-manager's CA injector fills the webhook configuration's caBundle), or else from
a CA the operator generates once and keeps in the Secret `vulcan-operator-webhook-ca` of its
namespace (never regenerated; the replicas racing to create it all take the one that won).
Each replica then signs its own serving certificate with it at start and writes the CA into
the caBundle of the ValidatingWebhookConfiguration `vulcan-operator` when it differs.
"""

from __future__ import annotations

import base64
import datetime
import logging
import tempfile
from pathlib import Path
from typing import Any

import aiohttp.web
import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vulcan_operator import kinds, names
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, ApiError, Ref

__all__ = [
    "CA_SECRET",
    "CONFIGURATION",
    "PATH",
    "SERVICE",
    "hostnames",
    "inject_ca",
    "server",
]

log = logging.getLogger(__name__)

#: Where the webhook is served: `/validate/<plural>` (the handler ids are the plurals).
PATH = "/validate"
#: The Service in front of every replica's webhook port (manifests/webhook/).
SERVICE = "vulcan-operator-webhook"
#: The Secret of the operator's namespace that keeps the generated CA (ca.crt, ca.key).
CA_SECRET = "vulcan-operator-webhook-ca"
#: The ValidatingWebhookConfiguration whose caBundle the generated CA goes into.
CONFIGURATION = "vulcan-operator"
#: Marks a configuration whose caBundle cert-manager injects: the operator leaves it alone.
INJECT_ANNOTATION = "cert-manager.io/inject-ca-from"
CA_YEARS = 10
#: The CA Secret's labels: the operator's own object (the admission policy of manifests/
#: lets the operator write only Secrets labelled managed-by vulcan-operator).
LABELS = {
    names.LABEL_NAME: "vulcan-operator",
    names.LABEL_PART_OF: names.APP_NAME,
    names.LABEL_COMPONENT: "webhook",
    names.LABEL_MANAGED_BY: names.MANAGED_BY,
}
WEBHOOKS = ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")
#: The ids of the admission handlers (handlers.admission): one per kind, its plural.
HANDLER_IDS = frozenset(kind.plural for kind in kinds.ALL)


def hostnames(namespace: str) -> list[str]:
    """The names the API server may call the webhook Service by."""
    return [
        f"{SERVICE}.{namespace}.svc",
        f"{SERVICE}.{namespace}.svc.cluster.local",
        f"{SERVICE}.{namespace}",
        SERVICE,
    ]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    dns_names: list[str],
    not_after: datetime.datetime,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)  # clock skew
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is None:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
        builder = (
            builder.add_extension(usage, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
        )
    return builder.sign(issuer_key, hashes.SHA256())


def new_ca() -> tuple[bytes, bytes]:
    """(certificate, key) of a new CA, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365 * CA_YEARS)
    return _pem(_certificate("vulcan-operator-webhook-ca", key, None, key, [], until)), _key_pem(
        key
    )


def issue(ca_pem: bytes, ca_key_pem: bytes, dns_names: list[str]) -> tuple[bytes, bytes]:
    """(certificate, key) for `dns_names`, signed by the CA, valid as long as the CA is."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"Secret {CA_SECRET}: ca.key is not the EC key the operator makes")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(dns_names[0], key, ca, ca_key, dns_names, ca.not_valid_after_utc)
    return _pem(cert), _key_pem(key)


async def ensure_ca(api: Api, namespace: str) -> tuple[bytes, bytes]:
    """(certificate, key) of the webhook CA: the one in the Secret, else a new one created
    there once. A Secret without both keys is never overwritten: the operator says so."""
    ref = Ref("v1", "Secret", namespace, CA_SECRET)
    secret = await api.get(ref)
    if secret is None:
        cert, key = new_ca()
        try:
            secret = await api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": CA_SECRET,
                        "namespace": namespace,
                        "labels": LABELS,
                    },
                    "type": "Opaque",
                    "data": {
                        "ca.crt": base64.b64encode(cert).decode(),
                        "ca.key": base64.b64encode(key).decode(),
                    },
                }
            )
            log.info("created the webhook CA in Secret %s/%s", namespace, CA_SECRET)
        except ApiError as exc:
            if exc.status != 409:
                raise
            secret = await api.get(ref)  # another replica made it first: take that one
    data = (secret or {}).get("data") or {}
    if not data.get("ca.crt") or not data.get("ca.key"):
        raise kopf.PermanentError(
            f"Secret {namespace}/{CA_SECRET} has no ca.crt and ca.key: delete it to let the "
            "operator make a new CA, or give --admission-cert-dir"
        )
    return base64.b64decode(data["ca.crt"]), base64.b64decode(data["ca.key"])


async def inject_ca(api: Api, ca_pem: bytes) -> bool:
    """Put the CA into every webhook of our ValidatingWebhookConfiguration whose caBundle
    differs; True when it was written. Absent, or cert-manager's to fill: left alone."""
    bundle = base64.b64encode(ca_pem).decode()
    ref = Ref(*WEBHOOKS, None, CONFIGURATION)
    for _attempt in range(5):
        config = await api.get(ref)
        if config is None:
            log.info("no ValidatingWebhookConfiguration %s: no caBundle to set", CONFIGURATION)
            return False
        meta = config.get("metadata") or {}
        if INJECT_ANNOTATION in (meta.get("annotations") or {}):
            return False
        hooks = config.get("webhooks") or []
        if all((h.get("clientConfig") or {}).get("caBundle") == bundle for h in hooks):
            return False
        for hook in hooks:
            hook.setdefault("clientConfig", {})["caBundle"] = bundle
        body = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "webhooks": hooks}
        try:
            await api.patch(ref, body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            continue  # changed meanwhile (another replica): read it again
        log.info("set the caBundle of ValidatingWebhookConfiguration %s", CONFIGURATION)
        return True
    raise kopf.TemporaryError(f"ValidatingWebhookConfiguration {CONFIGURATION} keeps changing")


class Server(kopf.WebhookServer):
    """Kopf's webhook server, closed to a path no handler has: Kopf would find no handler for
    it and admit the request; this answers 404, which the API server (failurePolicy Fail)
    turns into a refusal, so a misrouted webhook configuration fails closed."""

    @staticmethod
    async def _serve(fn: Any, request: aiohttp.web.Request) -> aiohttp.web.Response:
        if request.match_info.get("id") not in HANDLER_IDS:
            raise aiohttp.web.HTTPNotFound(reason=f"no webhook here; serving {PATH}/<plural>")
        return await kopf.WebhookServer._serve(fn, request)


async def server(settings: Settings, api: Api) -> kopf.WebhookServer:
    """Kopf's webhook server on `settings.admission_port`, with its certificate."""
    if settings.admission_cert_dir:
        folder = Path(settings.admission_cert_dir)
        for file in ("tls.crt", "tls.key", "ca.crt"):
            if not (folder / file).is_file():
                raise kopf.PermanentError(f"--admission-cert-dir {folder}: no {file} there")
    else:
        ca, ca_key = await ensure_ca(api, settings.operator_namespace)
        cert, key = issue(ca, ca_key, hostnames(settings.operator_namespace))
        # Private to this process (mode 0700); Kopf's server reads the files from there.
        folder = Path(tempfile.mkdtemp(prefix="vulcan-webhook-"))
        for file, data in (("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)):
            (folder / file).touch(mode=0o600)
            (folder / file).write_bytes(data)
        await inject_ca(api, ca)
    return Server(
        addr="0.0.0.0",  # every interface: the Service reaches each replica at its pod IP
        port=settings.admission_port,
        path=PATH,
        certfile=folder / "tls.crt",
        pkeyfile=folder / "tls.key",
        cafile=folder / "ca.crt",
    )
