"""Schema migration Jobs: the backend pod of a given version running a migration command."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from vulcan_operator import names
from vulcan_operator.builders.common import finish
from vulcan_operator.builders.engine import EngineInputs, build_deployment
from vulcan_operator.templating import render_one

COMPONENT = "migration"
TTL_SECONDS = 7 * 24 * 3600  # long enough for an upgrade to be looked into


def migration_job(
    inputs: EngineInputs, version: str, command: list[str], purpose: str, flow: str = ""
) -> dict[str, Any]:
    """A Job running `command` (e.g. alembic upgrade head) in the engine image at `version`.

    Its name carries a hash of version, command and `flow` (what started this version change):
    one Job per migration of a flow, found again after an operator restart, and a new one when
    a person asks to retry a failed version.
    """
    deployment = build_deployment(dataclasses.replace(inputs, run_version=version))
    pod = copy.deepcopy(deployment["spec"]["template"]["spec"])
    pod.pop("topologySpreadConstraints", None)
    pod["restartPolicy"] = "Never"
    (container,) = pod["containers"]
    for key in ("ports", "startupProbe", "livenessProbe", "readinessProbe"):
        container.pop(key, None)
    container["name"] = purpose
    container["command"] = list(command)
    digest = names.short_hash(json.dumps([version, command, flow]))
    job = render_one(
        "migration-job.yaml.j2",
        name=names.dns_name(inputs.name, purpose, digest),
        version=version,
        purpose=purpose,
        active_deadline_seconds=inputs.spec.upgrade.progressDeadlineSeconds,
        ttl_seconds_after_finished=TTL_SECONDS,
        labels=names.labels(inputs.name, COMPONENT),
        pod=pod,
    )
    return finish(job, inputs.owner, names.labels(inputs.name, COMPONENT))


def restore_migration_job(inputs: EngineInputs, version: str, restore_uid: str) -> dict[str, Any]:
    """The migration a VulcanRestore runs after restoring: the engine's migration command in
    the image of the version it runs, one Job per restore (named from the restore's uid)."""
    command = list(inputs.spec.upgrade.migrationCommand)
    return migration_job(inputs, version, command, "migrate", flow=f"restore/{restore_uid}")
