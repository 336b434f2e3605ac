"""Operator settings from the environment, and where the templates live.

Every setting has a default, so the operator (and `vulcan-operator render`) runs with no
environment at all. Read once at start-up with `Settings.from_env()` and pass the frozen value
down; builders never read the environment themselves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from vulcan_operator.sharding import UNSHARDED, Shard

__all__ = [
    "DEFAULT_POSTGRES_IMAGE",
    "DEFAULT_PROBLEM_POLL_SECONDS",
    "DEFAULT_RESYNC_SECONDS",
    "ENV_ALLOWED_IMAGES",
    "ENV_IMAGE_PULL_SECRETS",
    "ENV_NAMESPACES",
    "ENV_OPERATOR_IMAGE",
    "ENV_POSTGRES_IMAGE",
    "ENV_PROBLEM_POLL_SECONDS",
    "ENV_RESYNC_SECONDS",
    "ENV_TEMPLATES_DIR",
    "Settings",
    "default_operator_image",
    "package_version",
    "templates_dir",
]

ENV_OPERATOR_IMAGE = "VULCAN_OPERATOR_IMAGE"
ENV_RESYNC_SECONDS = "VULCAN_RESYNC_SECONDS"
ENV_POLL_SECONDS = "VULCAN_POLL_SECONDS"
ENV_NAMESPACES = "VULCAN_NAMESPACES"
ENV_POSTGRES_IMAGE = "VULCAN_POSTGRES_IMAGE"
ENV_TEMPLATES_DIR = "VULCAN_TEMPLATES_DIR"
ENV_PROBLEM_POLL_SECONDS = "VULCAN_PROBLEM_POLL_SECONDS"
ENV_IMAGE_PULL_SECRETS = "VULCAN_IMAGE_PULL_SECRETS"
ENV_ALLOWED_IMAGES = "VULCAN_ALLOWED_IMAGES"
ENV_OPERATOR_NAMESPACE = "POD_NAMESPACE"

OPERATOR_IMAGE_REPOSITORY = "ghcr.io/vulcan-engine/vulcan-operator"
DEFAULT_POSTGRES_IMAGE = "postgres:15-alpine"
DEFAULT_RESYNC_SECONDS = 60
DEFAULT_PROBLEM_POLL_SECONDS = 10
DEFAULT_POLL_SECONDS = 5

_PACKAGE_DIR = Path(__file__).resolve().parent


def package_version() -> str:
    """The installed version of the operator package ('0.0.0' when not installed)."""
    try:
        return metadata.version("vulcan-operator")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def default_operator_image() -> str:
    """The operator's own image at the installed version (it also holds the solver)."""
    return f"{OPERATOR_IMAGE_REPOSITORY}:{package_version()}"


def templates_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder of `*.yaml.j2` templates.

    `$VULCAN_TEMPLATES_DIR` when set; else the copy shipped inside the wheel
    (`vulcan_operator/templates`); else the repository's top-level `templates/` (editable
    installs and a source checkout).
    """
    env = os.environ if environ is None else environ
    override = env.get(ENV_TEMPLATES_DIR, "").strip()
    if override:
        return Path(override)
    packaged = _PACKAGE_DIR / "templates"
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent.parent / "templates"


def _positive_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r}: expected a whole number of seconds") from None
    if value < 1:
        raise ValueError(f"{key}={raw!r}: must be at least 1")
    return value


def _positive_seconds(env: Mapping[str, str], key: str, default: float) -> float:
    """A number of seconds, fractions allowed (at least 0.1)."""
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r}: expected a number of seconds") from None
    if not value >= 0.1:
        raise ValueError(f"{key}={raw!r}: must be at least 0.1")
    return value


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _secret_names(env: Mapping[str, str], key: str) -> tuple[str, ...]:
    """A comma-separated list of Secret names (DNS subdomains), in order, without repeats."""
    names = [n.strip() for n in env.get(key, "").split(",") if n.strip()]
    bad = [n for n in names if len(n) > 253 or not _DNS_SUBDOMAIN.match(n)]
    if bad:
        raise ValueError(f"{key}: {bad[0]!r} is not a Secret name (a DNS-1123 subdomain)")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Settings:
    """What the operator is configured with, beyond the resources it watches."""

    #: Image of the operator (and the solver); used by solver, backup and restore Jobs.
    operator_image: str = field(default_factory=default_operator_image)
    #: Periodic resync of each engine, seconds.
    resync_seconds: int = DEFAULT_RESYNC_SECONDS
    #: How often an engine with something in flight (rollout, upgrade, restore) and an
    #: unfinished VulcanBackup or VulcanRestore are looked at, seconds (fractions allowed).
    poll_seconds: float = DEFAULT_POLL_SECONDS
    #: Liveness fails after this long without any handler running (while engines exist);
    #: 0: three resync periods and a minute.
    liveness_seconds: int = 0
    #: Port of the operator's own /metrics.
    metrics_port: int = 9090
    #: Namespaces to watch; empty: the whole cluster.
    namespaces: tuple[str, ...] = ()
    #: PostgreSQL client image of the backup and maintenance Jobs (pg_dump, psql).
    postgres_image: str = DEFAULT_POSTGRES_IMAGE
    #: How often an unfinished SchedulingProblem is looked at again without any event (a
    #: missing engine or ConfigMap, a pod that does not start); Job changes and freed solver
    #: slots wake it at once.
    problem_poll_seconds: int = DEFAULT_PROBLEM_POLL_SECONDS
    #: Registry credentials (Secret names) of the pods of the operator's own Jobs (solver,
    #: backup, restore, maintenance, migration): they run the operator's and the client
    #: images. Each Secret must exist in the namespace such a pod runs in (a missing one only
    #: makes the kubelet try without it); the engine's spec.imagePullSecrets come first.
    image_pull_secrets: tuple[str, ...] = ()
    #: Registries or repository prefixes an engine's images must be under (spec.image and
    #: every other image its spec names); empty: any image.
    allowed_images: tuple[str, ...] = ()
    #: The namespace the operator runs in (its webhook Service and CA Secret live there).
    operator_namespace: str = "vulcan-system"
    #: HTTPS port of the validating admission webhook; 0: no webhook (`run --admission-port`).
    admission_port: int = 0
    #: Folder with tls.crt, tls.key and ca.crt for the webhook (`run --admission-cert-dir`);
    #: empty: a certificate from a CA the operator keeps in a Secret of its namespace.
    admission_cert_dir: str = ""
    #: The namespaces this operator owns among those it watches (`run --shard K/N`).
    shard: Shard = UNSHARDED

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `VULCAN_*` environment variables; unset or empty means default."""
        env = os.environ if environ is None else environ
        namespaces = tuple(
            ns.strip() for ns in env.get(ENV_NAMESPACES, "").split(",") if ns.strip()
        )
        return cls(
            operator_image=env.get(ENV_OPERATOR_IMAGE, "").strip() or default_operator_image(),
            resync_seconds=_positive_int(env, ENV_RESYNC_SECONDS, DEFAULT_RESYNC_SECONDS),
            poll_seconds=_positive_seconds(env, ENV_POLL_SECONDS, DEFAULT_POLL_SECONDS),
            liveness_seconds=_positive_int(env, "VULCAN_LIVENESS_SECONDS", 0),
            metrics_port=_positive_int(env, "VULCAN_METRICS_PORT", 9090),
            namespaces=namespaces,
            postgres_image=env.get(ENV_POSTGRES_IMAGE, "").strip() or DEFAULT_POSTGRES_IMAGE,
            problem_poll_seconds=_positive_int(
                env, ENV_PROBLEM_POLL_SECONDS, DEFAULT_PROBLEM_POLL_SECONDS
            ),
            image_pull_secrets=_secret_names(env, ENV_IMAGE_PULL_SECRETS),
            allowed_images=tuple(
                i.strip() for i in env.get(ENV_ALLOWED_IMAGES, "").split(",") if i.strip()
            ),
            operator_namespace=env.get(ENV_OPERATOR_NAMESPACE, "").strip() or "vulcan-system",
        )

    @property
    def liveness_threshold(self) -> int:
        """Seconds of silence after which the liveness probe fails."""
        return self.liveness_seconds or 3 * self.resync_seconds + 60

    @property
    def clusterwide(self) -> bool:
        """True when no namespace list restricts the operator."""
        return not self.namespaces

    @property
    def visible_namespaces(self) -> tuple[str | None, ...]:
        """Where to list a kind across the operator's reach: every namespace (None) when it
        runs cluster-wide or with namespace patterns (which need cluster-wide rights), else
        each watched namespace (a namespaced install's Roles allow nothing more)."""
        if self.clusterwide or any(set(ns) & set("*?[]!") for ns in self.namespaces):
            return (None,)
        return self.namespaces
