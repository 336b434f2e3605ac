"""How the engine is reached from outside: the Ingress, and for an nginx class the /solve
Ingress with its request limit and the security-headers ConfigMap (the guide's nginx.conf)."""

from __future__ import annotations

from collections.abc import Mapping

from vulcan_operator import names
from vulcan_operator.builders.engine import (
    API_V1_STR,
    PORT_NAME,
    EngineInputs,
    Manifest,
    _finish,
)
from vulcan_operator.templating import render_one

CERT_MANAGER_ISSUER = "cert-manager.io/cluster-issuer"
# The guide's /solve route (app.api.routes.scheduling, under API_V1_STR) and its limit:
# `@limiter.limit("10 per minute")`, enforced at the edge too for an nginx class.
SOLVE_PATH = f"{API_V1_STR}/scheduling/solve"
SOLVE_REQUESTS_PER_MINUTE = 10
NGINX_LIMIT_RPM = "nginx.ingress.kubernetes.io/limit-rpm"
# The guide's security headers (nginx.conf `add_header`s). ingress-nginx serves them through
# its `custom-headers` annotation only once the controller lists them in
# `global-allowed-response-headers` (else it answers 503), so the operator makes the
# ConfigMap and leaves the annotation to spec.ingress.annotations (README "Ingress").
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-XSS-Protection": "1; mode=block",
    "Content-Security-Policy": "default-src 'self'",
}
# The guide's nginx TLS settings, where ingress-nginx has an annotation for them (no snippets;
# HSTS and ssl_protocols are controller-wide settings in ingress-nginx).
NGINX_TLS_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
    "nginx.ingress.kubernetes.io/ssl-ciphers": "HIGH:!aNULL:!MD5",
    "nginx.ingress.kubernetes.io/ssl-prefer-server-ciphers": "true",
}


def nginx_class(inputs: EngineInputs) -> bool:
    """Whether the Ingress class is an nginx one (ingress-nginx's annotations apply)."""
    return "nginx" in inputs.spec.ingress.className


def _ingress_annotations(inputs: EngineInputs) -> dict[str, str]:
    """spec.ingress.annotations, then the operator's own (cert-manager issuer, the guide's
    TLS settings for nginx); the model refuses user keys that are ours."""
    ingress = inputs.spec.ingress
    annotations = dict(ingress.annotations)
    if ingress.tls.enabled and ingress.tls.clusterIssuer:
        annotations[CERT_MANAGER_ISSUER] = ingress.tls.clusterIssuer
    if ingress.tls.enabled and nginx_class(inputs):
        annotations.update(NGINX_TLS_ANNOTATIONS)
    return annotations


def _ingress(
    inputs: EngineInputs, name: str, path: str, annotations: Mapping[str, str]
) -> Manifest:
    ingress = inputs.spec.ingress
    return _finish(
        inputs,
        render_one(
            "ingress.yaml.j2",
            name=name,
            annotations=dict(annotations),
            class_name=ingress.className,
            host=ingress.host,
            tls_secret=ingress.tls.secretName if ingress.tls.enabled else "",
            path=path,
            service=names.engine_service(inputs.name),
            port_name=PORT_NAME,
        ),
    )


def build_ingress(inputs: EngineInputs) -> Manifest | None:
    """Ingress for spec.ingress.host → the Service's `http` port, with TLS; or None."""
    if not inputs.spec.ingress.enabled:
        return None
    return _ingress(inputs, names.engine_ingress(inputs.name), "/", _ingress_annotations(inputs))


def build_solve_ingress(inputs: EngineInputs) -> Manifest | None:
    """For an nginx class: the /solve path in an Ingress of its own (ingress-nginx limits
    per Ingress), with the guide's 10 requests a minute per client address and the same
    annotations otherwise (an allow-list or auth on the main Ingress holds here too)."""
    if not (inputs.spec.ingress.enabled and nginx_class(inputs)):
        return None
    annotations = {
        **_ingress_annotations(inputs),
        NGINX_LIMIT_RPM: str(SOLVE_REQUESTS_PER_MINUTE),
    }
    return _ingress(inputs, names.engine_solve_ingress(inputs.name), SOLVE_PATH, annotations)


def build_security_headers(inputs: EngineInputs) -> Manifest | None:
    """For an nginx class: the guide's security headers as a ConfigMap for ingress-nginx's
    `custom-headers` annotation (set it in spec.ingress.annotations once the controller
    allows these headers; see SECURITY_HEADERS)."""
    if not (inputs.spec.ingress.enabled and nginx_class(inputs)):
        return None
    return _finish(
        inputs,
        render_one(
            "configmap.yaml.j2",
            name=names.engine_security_headers(inputs.name),
            data=SECURITY_HEADERS,
        ),
    )


def build(inputs: EngineInputs) -> list[Manifest]:
    """The security-headers ConfigMap, the Ingress and the /solve Ingress, each when made."""
    made = (build_security_headers(inputs), build_ingress(inputs), build_solve_ingress(inputs))
    return [obj for obj in made if obj]
