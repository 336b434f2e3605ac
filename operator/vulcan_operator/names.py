"""Every child name, label, selector and annotation key the operator uses.

Names are DNS-1123 labels (lowercase letters, digits, '-', at most 63 characters) so they are
valid for every kind we create; a Service name is also a DNS-1035 label (starts with a letter).
A name that is too long, or that had to be changed to become valid, is truncated and given a
short stable hash of the full input, so two different inputs never share a name.

Labels never include `app.kubernetes.io/instance` (Argo CD's tracking label: a child carrying
it is pruned by Argo CD in a loop) and never copy the engine's own labels or annotations.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "ANNOTATION_CONFIG_HASH",
    "ANNOTATION_DEFAULT_CONTAINER",
    "ANNOTATION_ROTATE_SECRETS",
    "ANNOTATION_SECRETS_ROTATION",
    "ANNOTATION_SPEC_HASH",
    "APP_NAME",
    "COMPONENT_BACKEND",
    "COMPONENT_BACKUP",
    "COMPONENT_DRILL",
    "COMPONENT_MAINTENANCE",
    "COMPONENT_MONITORING",
    "COMPONENT_RESTORE",
    "COMPONENT_SOLVER",
    "CRONJOB_NAME_MAX",
    "DATABASE_URL_KEY",
    "HASH_LENGTH",
    "LABEL_COMPONENT",
    "LABEL_ENGINE",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_PART_OF",
    "LABEL_PROBLEM",
    "MANAGED_BY",
    "MAX_LABEL_LENGTH",
    "MAX_SUBDOMAIN_LENGTH",
    "app_pvc",
    "backup_cronjob",
    "backup_job",
    "backup_pvc",
    "default_database_secret",
    "dns1035_name",
    "dns_name",
    "drill_cronjob",
    "engine_config",
    "engine_dashboard_configmap",
    "engine_dashboard_file",
    "engine_dashboard_uid",
    "engine_deployment",
    "engine_egress_policy",
    "engine_hpa",
    "engine_ingress",
    "engine_keys_secret",
    "engine_network_policy",
    "engine_pdb",
    "engine_prometheus_rule",
    "engine_security_headers",
    "engine_service",
    "engine_service_account",
    "engine_service_monitor",
    "engine_solve_ingress",
    "label_value",
    "labels",
    "maintenance_cronjob",
    "problem_job",
    "problem_schedule_configmap",
    "problem_solver_account",
    "restore_job",
    "selector",
    "short_hash",
]

MAX_LABEL_LENGTH = 63
MAX_SUBDOMAIN_LENGTH = 253
#: A CronJob's name: the CronJob controller appends 11 characters ("-" and the scheduled time
#: in minutes) to make the names of its Jobs, which may not exceed 63.
CRONJOB_NAME_MAX = 52
HASH_LENGTH = 8

# --- labels -------------------------------------------------------------------------------
LABEL_NAME = "app.kubernetes.io/name"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_ENGINE = "vulcan-engine.com/engine"
#: On a SchedulingProblem's solver Job, its pod and its other children: the problem's name.
LABEL_PROBLEM = "vulcan-engine.com/problem"

APP_NAME = "vulcan-engine"
MANAGED_BY = "vulcan-operator"

#: Component of the engine's backend and its core children (config, keys, service, ...).
COMPONENT_BACKEND = "backend"
#: Component of an engine's ServiceMonitor, PrometheusRule and Grafana dashboard ConfigMap.
COMPONENT_MONITORING = "monitoring"
#: Component of the solver Jobs of SchedulingProblems and what comes with them.
COMPONENT_SOLVER = "solver"
#: Components of an engine's scheduled and on-demand backups (and its backup claim), of its
#: scheduled maintenance, and of its restores.
COMPONENT_BACKUP = "backup"
COMPONENT_MAINTENANCE = "maintenance"
COMPONENT_DRILL = "drill"
COMPONENT_RESTORE = "restore"

# --- annotations --------------------------------------------------------------------------
#: Hash of a child as built (see builders.common.finish); `k8s.apply` compares the fields.
ANNOTATION_SPEC_HASH = "vulcan-engine.com/spec-hash"
#: On the pod template: hash of the ConfigMap data and the key rotation; a change rolls pods.
ANNOTATION_CONFIG_HASH = "vulcan-engine.com/config-hash"
#: Set by the user on the VulcanEngine; a new value asks for new SECRET_KEY/JWT_SECRET_KEY.
ANNOTATION_ROTATE_SECRETS = "vulcan-engine.com/rotate-secrets"
#: On the generated keys Secret: the rotate-secrets value the keys were generated for.
ANNOTATION_SECRETS_ROTATION = "vulcan-engine.com/secrets-rotation"
#: kubectl logs/exec pick this container by default.
ANNOTATION_DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"

#: Key of DATABASE_URL in the conventional `<engine>-database` Secret.
DATABASE_URL_KEY = "database-url"

_INVALID = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE_INVALID = re.compile(r"[^A-Za-z0-9._-]+")


def short_hash(text: str, length: int = HASH_LENGTH) -> str:
    """The first `length` hex characters of the SHA-256 of `text`: stable across runs."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _clean(text: str) -> str:
    return _INVALID.sub("-", text.lower()).strip("-")


def dns_name(*parts: str, max_length: int = MAX_LABEL_LENGTH) -> str:
    """Join `parts` with '-' into a DNS-1123 label of at most `max_length` characters.

    Unchanged when the joined text is already valid and short enough. Otherwise characters
    outside [a-z0-9-] become '-', and the result carries an 8-hex-digit hash of the original
    text; when too long, the front is truncated and the last part is kept so the name still
    says what it is: `<truncated front>-<hash>-<last part>`.
    """
    if not 1 <= max_length <= MAX_SUBDOMAIN_LENGTH:
        raise ValueError(f"max_length must be 1..{MAX_SUBDOMAIN_LENGTH}, not {max_length}")
    if max_length <= HASH_LENGTH + 1:
        raise ValueError(f"max_length {max_length} leaves no room for the hash suffix")
    raw = "-".join(parts)
    cleaned = _clean(raw)
    if cleaned == raw and 0 < len(raw) <= max_length:
        return raw
    digest = short_hash(raw)
    if len(parts) > 1:
        tail = _clean(parts[-1])
        head = _clean("-".join(parts[:-1]))
        room = max_length - len(tail) - len(digest) - 2
        if tail and room >= min(len(head), 8):
            head = head[:room].rstrip("-")
            return f"{head}-{digest}-{tail}" if head else f"{digest}-{tail}"
    front = cleaned[: max_length - len(digest) - 1].rstrip("-")
    return f"{front}-{digest}" if front else digest


def dns1035_name(*parts: str, max_length: int = MAX_LABEL_LENGTH) -> str:
    """Like `dns_name`, but also starting with a letter (Service names).

    A name that would start with a digit gets the prefix 've-' (for Vulcan Engine).
    """
    name = dns_name(*parts, max_length=max_length)
    if name[0].isalpha():
        return name
    return dns_name("ve", *parts, max_length=max_length)


def label_value(text: str) -> str:
    """`text` as a valid label value (at most 63 characters), hashed when it had to change."""
    cleaned = _LABEL_VALUE_INVALID.sub("-", text).strip("-._")
    if cleaned == text and len(text) <= MAX_LABEL_LENGTH:
        return text
    digest = short_hash(text)
    front = cleaned[: MAX_LABEL_LENGTH - len(digest) - 1].rstrip("-._")
    return f"{front}-{digest}" if front else digest


# --- labels and selectors -----------------------------------------------------------------


def selector(engine: str, component: str) -> dict[str, str]:
    """The labels that select one component of one engine; stable across versions."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_ENGINE: label_value(engine),
        LABEL_COMPONENT: label_value(component),
    }


def labels(engine: str, component: str) -> dict[str, str]:
    """All labels of a child: the selector plus part-of and managed-by."""
    return {
        **selector(engine, component),
        LABEL_PART_OF: APP_NAME,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


# --- the engine's core children -----------------------------------------------------------


def engine_deployment(engine: str) -> str:
    """Deployment of the backend: the engine's own name (made DNS-valid)."""
    return dns_name(engine)


def engine_service(engine: str) -> str:
    """Service of the backend (`http://<engine>.<namespace>.svc`)."""
    return dns1035_name(engine)


def engine_service_account(engine: str) -> str:
    """ServiceAccount of the backend pods."""
    return dns_name(engine)


def engine_hpa(engine: str) -> str:
    """HorizontalPodAutoscaler of the backend Deployment."""
    return dns_name(engine)


def engine_pdb(engine: str) -> str:
    """PodDisruptionBudget of the backend pods."""
    return dns_name(engine)


def engine_network_policy(engine: str) -> str:
    """NetworkPolicy guarding the backend pods."""
    return dns_name(engine)


def engine_ingress(engine: str) -> str:
    """Ingress of the backend Service."""
    return dns_name(engine)


def engine_egress_policy(engine: str) -> str:
    """NetworkPolicy restricting the outgoing traffic of the engine's pods."""
    return dns_name(engine, "egress")


def engine_solve_ingress(engine: str) -> str:
    """Ingress of the /solve path alone (nginx classes: its own request limit)."""
    return dns_name(engine, "solve")


def engine_security_headers(engine: str) -> str:
    """ConfigMap of the guide's security response headers (ingress-nginx custom-headers)."""
    return dns_name(engine, "security-headers")


def engine_config(engine: str) -> str:
    """ConfigMap with the backend's non-secret settings."""
    return dns_name(engine, "config")


def engine_keys_secret(engine: str) -> str:
    """Secret with the generated SECRET_KEY and JWT_SECRET_KEY."""
    return dns_name(engine, "keys")


def default_database_secret(engine: str) -> str:
    """The Secret holding DATABASE_URL (key `database-url`) when spec.database has no ref.

    A user-made Secret, so exactly `<engine>-database`: it must be guessable. (Only an
    engine name too long for the suffix, over 244 characters, gets a hashed name.)
    """
    name = f"{engine}-database"
    if len(name) <= MAX_SUBDOMAIN_LENGTH:
        return name
    return dns_name(engine, "database", max_length=MAX_SUBDOMAIN_LENGTH)


# --- an engine's backups, maintenance and restores ----------------------------------------


def backup_cronjob(engine: str) -> str:
    """CronJob of the scheduled backups (at most 52 characters, as CronJob names must be)."""
    return dns_name(engine, "backup", max_length=CRONJOB_NAME_MAX)


def maintenance_cronjob(engine: str) -> str:
    """CronJob of the scheduled maintenance."""
    return dns_name(engine, "maintenance", max_length=CRONJOB_NAME_MAX)


def drill_cronjob(engine: str) -> str:
    """CronJob of the scheduled restore drills."""
    return dns_name(engine, "drill", max_length=CRONJOB_NAME_MAX)


def backup_pvc(engine: str) -> str:
    """The PersistentVolumeClaim the operator creates for an engine's backups."""
    return dns_name(engine, "backups")


def app_pvc(engine: str, volume: str) -> str:
    """The PersistentVolumeClaim the operator creates for an engine's /app/data ("data") or
    /app/uploads ("uploads") volume."""
    return dns_name(engine, volume)


def backup_job(backup: str, digest: str) -> str:
    """Job of one VulcanBackup; `digest` is a short hash of the Job's inputs."""
    return dns_name(backup, "backup", digest)


def restore_job(restore: str, digest: str) -> str:
    """Job of one VulcanRestore; `digest` is a short hash of the Job's inputs."""
    return dns_name(restore, "restore", digest)


# --- an engine's monitoring children -------------------------------------------------------


def engine_service_monitor(engine: str) -> str:
    """ServiceMonitor of the engine: the engine's name, like its Service."""
    return dns_name(engine)


def engine_prometheus_rule(engine: str) -> str:
    """PrometheusRule with the engine's alerts."""
    return dns_name(engine)


def engine_dashboard_configmap(engine: str) -> str:
    """ConfigMap with the engine's Grafana dashboard."""
    return dns_name(engine, "dashboard")


def engine_dashboard_file(engine: str, namespace: str) -> str:
    """The dashboard's key in its ConfigMap: the file the Grafana sidecar writes, unique per
    engine across namespaces, a valid ConfigMap key of at most 253 characters."""
    stem = dns_name(
        "vulcan-engine", namespace, engine, max_length=MAX_SUBDOMAIN_LENGTH - len(".json")
    )
    return f"{stem}.json"


def engine_dashboard_uid(engine: str, namespace: str) -> str:
    """The dashboard's Grafana uid: stable per engine, within Grafana's 40 characters."""
    return f"vulcan-{short_hash(f'{namespace}/{engine}', 16)}"


# --- a SchedulingProblem's children -------------------------------------------------------


def problem_job(problem: str, uid: str, generation: int) -> str:
    """The solver Job of one generation of a problem: `<problem>-solve-<hash>`.

    The hash covers the problem's uid and generation, so a retry or an operator restart finds
    the same Job (never a second one), a spec edit gets a new Job, and a problem deleted and
    created again with the same name never meets the old Job. At most 63 characters, as a Job
    name must be (its pods carry it in the `job-name` label).
    """
    return dns_name(problem, "solve", short_hash(f"{uid}/{generation}"))


def problem_solver_account(problem: str) -> str:
    """ServiceAccount, Role and RoleBinding of a problem's solver pods (one per problem)."""
    return dns_name(problem, "solver")


def problem_schedule_configmap(problem: str) -> str:
    """ConfigMap holding a problem's full schedule (the solver pod writes it)."""
    return dns_name(problem, "schedule")
