"""Hypothesis strategies: valid VulcanEngine, SchedulingProblem, VulcanBackup and VulcanRestore
documents, and invalid ones made by mutating valid ones, each knowing the field it broke.

    from tests.support.fuzzdocs import KINDS, valid_doc, invalid_doc, Broken

    @given(valid_doc("VulcanEngine"))          # a dict, as `yaml.safe_load` gives it
    @given(invalid_doc("SchedulingProblem"))   # a Broken: .doc, .path ("spec.jobs[0].name"), .how

Mutations: a wrong type, a number out of range, an unknown field, a bad enum value, a bad cron
schedule, a broken reference (unknown machine, skill nobody has, duplicate names, both or
neither of two exclusive fields), a missing required field, wrong nesting (a mapping where a
list belongs and the other way round, a field one level too high). Every mutation is one the
API models must refuse: `Broken.path` is the field a good error message names (or an
ancestor of it, for checks that span fields).

`solver_problem()` gives small bare problems (machines, operators, jobs) for `solve`, and
`invalid_solver_problem()` broken ones.
"""

from __future__ import annotations

import copy
import re
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

API_VERSION = "vulcan-engine.com/v1alpha1"
KINDS = ("VulcanEngine", "SchedulingProblem", "VulcanBackup", "VulcanRestore")

Doc = dict[str, Any]

# --- small pieces -----------------------------------------------------------------------------
_ALNUM = string.ascii_lowercase + string.digits
_KEY = string.ascii_letters + string.digits + "-._"
_VERSION = string.ascii_letters + string.digits + "_"
_UPPER = string.ascii_uppercase + "_"
_LOWER = string.ascii_lowercase + "_"


@st.composite
def dns_label(draw: st.DrawFn, max_size: int = 20) -> str:
    middle = draw(st.text(_ALNUM + "-", max_size=max_size - 2))
    first = draw(st.sampled_from(_ALNUM))
    last = draw(st.sampled_from(_ALNUM))
    return (first + middle + last).replace("--", "-") if middle else first


def dns_subdomain() -> st.SearchStrategy[str]:
    return st.lists(dns_label(12), min_size=1, max_size=3).map(".".join)


def token() -> st.SearchStrategy[str]:
    """A problem name: no whitespace (the problem format allows almost anything else)."""
    return st.text(string.ascii_letters + string.digits + "-_.:/", min_size=1, max_size=12)


def word(
    first: str, rest: str, max_size: int, last: str | None = None, min_size: int = 0
) -> st.SearchStrategy[str]:
    """first char from `first`, then up to `max_size` from `rest`, optionally ending in `last`
    (what a regex like [a-z][a-z0-9-]*[a-z] says, without from_regex's cost)."""
    parts = [st.sampled_from(first), st.text(rest, min_size=min_size, max_size=max_size)]
    if last is not None:
        parts.append(st.sampled_from(last))
    return st.tuples(*parts).map("".join)


def secret_key_ref() -> st.SearchStrategy[Doc]:
    return st.fixed_dictionaries({"name": dns_subdomain(), "key": word(_KEY, _KEY, 19)})


CPU = ["50m", "100m", "250m", "500m", "1", "2", "4", 1, 2, "1500m"]
MEMORY = ["64Mi", "128Mi", "512Mi", "1Gi", "2Gi", "4Gi", "1G", "500M"]
GOOD_CRONS = [
    "0 2 * * *",
    "*/15 * * * *",
    "30 1 * * MON-FRI",
    "0 3 * * 0",
    "0 0 1 * *",
    "5,35 */2 1-15 jan,jul *",
    "@daily",
    "@weekly",
    "@hourly",
    "59 23 31 12 6",
]
BAD_CRONS = [
    "61 * * * *",
    "0 24 * * *",
    "0 2 * * 7",
    "0 2 * * * *",
    "0 2 * *",
    "every day",
    "",
    "@every 5m",
    "0 2 32 * *",
    "0 2 * 13 *",
    "*/0 * * * *",
    "0 2 * * MON-FUNDAY",
]


@st.composite
def cron(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(GOOD_CRONS))
    minute = draw(
        st.sampled_from(["*", "0", "15", "*/5", "0-30/10", str(draw(st.integers(0, 59)))])
    )
    hour = draw(st.sampled_from(["*", "2", "*/3", "8-18", str(draw(st.integers(0, 23)))]))
    dom = draw(st.sampled_from(["*", "1", "1-15", str(draw(st.integers(1, 31)))]))
    month = draw(st.sampled_from(["*", "1", "JAN", "6-8", str(draw(st.integers(1, 12)))]))
    dow = draw(st.sampled_from(["*", "0", "1-5", "SAT,SUN", str(draw(st.integers(0, 6)))]))
    return f"{minute} {hour} {dom} {month} {dow}"


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value, or the field left out (a sentinel the builders drop)."""
    return st.one_of(st.just(_ABSENT), strategy)


_ABSENT = object()


def _mapping(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Doc]:
    return st.fixed_dictionaries(fields).map(
        lambda d: {k: v for k, v in d.items() if v is not _ABSENT}
    )


# --- VulcanEngine -----------------------------------------------------------------------------
@st.composite
def resources(draw: st.DrawFn) -> Doc:
    """requests <= limits, as the API server requires of every container."""
    cpu_values = ["100m", "250m", "500m", "1", "2", "4"]
    mem_values = ["128Mi", "512Mi", "1Gi", "2Gi", "4Gi", "8Gi"]
    lo_cpu, hi_cpu = sorted(draw(st.lists(st.integers(0, 5), min_size=2, max_size=2)))
    lo_mem, hi_mem = sorted(draw(st.lists(st.integers(0, 5), min_size=2, max_size=2)))
    requests = {"cpu": cpu_values[lo_cpu], "memory": mem_values[lo_mem]}
    limits = {"cpu": cpu_values[hi_cpu], "memory": mem_values[hi_mem]}
    if draw(st.booleans()):
        limits.pop("cpu")
    if draw(st.booleans()):
        requests["ephemeral-storage"] = "1Gi"
    return {"requests": requests, "limits": limits}


@st.composite
def autoscaling(draw: st.DrawFn) -> Doc:
    low = draw(st.integers(1, 20))
    high = draw(st.integers(low, 40))
    return draw(
        _mapping(
            enabled=maybe(st.booleans()),
            minReplicas=st.just(low),
            maxReplicas=st.just(high),
            targetCPUUtilizationPercentage=maybe(st.integers(1, 100)),
            targetMemoryUtilizationPercentage=maybe(st.integers(1, 100)),
        )
    )


def backup_storage() -> st.SearchStrategy[Doc]:
    pvc = _mapping(
        size=maybe(st.sampled_from(["1Gi", "20Gi", "500Gi", "1Ti"])),
        storageClassName=maybe(st.sampled_from(["", "fast", "standard"])),
        claimName=maybe(st.one_of(st.just(""), dns_subdomain())),
    )
    s3 = _mapping(
        bucket=word(_ALNUM, _ALNUM + ".-", 20, _ALNUM, min_size=1),
        prefix=maybe(st.sampled_from(["", "database/", "prod/db", "a/b/c/"])),
        endpoint=maybe(st.sampled_from(["", "https://minio.example.com:9000", "http://s3:9000"])),
        region=maybe(st.sampled_from(["", "eu-west-1"])),
        credentialsSecretRef=st.fixed_dictionaries({"name": dns_subdomain()}),
    )
    return st.one_of(st.builds(lambda p: {"pvc": p}, pvc), st.builds(lambda s: {"s3": s}, s3))


def engine_spec() -> st.SearchStrategy[Doc]:
    return _mapping(
        version=word(_VERSION, _VERSION + ".-", 15),
        image=maybe(
            st.sampled_from(
                [
                    "vulcan-engine",
                    "ghcr.io/acme/vulcan-engine",
                    "registry.example.com:5000/platform/vulcan_engine",
                ]
            )
        ),
        imagePullPolicy=maybe(st.sampled_from(["Always", "IfNotPresent", "Never"])),
        environment=maybe(st.sampled_from(["production", "staging", "development"])),
        replicas=maybe(st.integers(1, 1000)),
        autoscaling=maybe(autoscaling()),
        resources=maybe(resources()),
        database=maybe(
            _mapping(
                urlSecretRef=maybe(secret_key_ref()),
                poolSize=maybe(st.integers(5, 100)),
                maxOverflow=maybe(st.integers(0, 500)),
                poolTimeoutSeconds=maybe(st.integers(1, 3600)),
                poolRecycleSeconds=maybe(st.integers(60, 86400)),
            )
        ),
        redis=maybe(
            _mapping(
                urlSecretRef=maybe(secret_key_ref()),
                maxConnections=maybe(st.integers(1, 10000)),
                cacheTTLSeconds=maybe(st.integers(0, 86400)),
            )
        ),
        secrets=maybe(
            _mapping(secretKeyRef=maybe(secret_key_ref()), jwtSecretKeyRef=maybe(secret_key_ref()))
        ),
        jwt=maybe(
            _mapping(
                algorithm=maybe(st.sampled_from(["HS256", "HS384", "HS512"])),
                accessTokenExpireMinutes=maybe(st.integers(1, 1440)),
                refreshTokenExpireDays=maybe(st.integers(1, 365)),
            )
        ),
        cors=maybe(
            _mapping(
                origins=st.lists(
                    st.sampled_from(
                        ["https://app.example.com", "http://localhost:3000", "https://a.b:8443"]
                    ),
                    max_size=3,
                )
            )
        ),
        rateLimit=maybe(
            _mapping(
                enabled=maybe(st.booleans()), requestsPerMinute=maybe(st.integers(1, 1_000_000))
            )
        ),
        solver=maybe(
            _mapping(
                maxTimeSeconds=maybe(
                    st.floats(0.5, 86400, allow_nan=False).map(lambda x: round(x, 1))
                ),
                # Within the engine's default caps (maxWorkers 16, maxMemoryMB 32768).
                numWorkers=maybe(st.integers(1, 16)),
                memoryLimitMB=maybe(st.integers(256, 32768)),
                useLNS=maybe(st.booleans()),
                maxConcurrentJobs=maybe(st.integers(1, 1000)),
                queueName=maybe(st.one_of(st.just(""), dns_label())),
            )
        ),
        backup=maybe(
            _mapping(
                enabled=maybe(st.booleans()),
                schedule=maybe(cron()),
                retentionDays=maybe(st.integers(1, 3650)),
                storage=maybe(backup_storage()),
                notifyWebhookSecretRef=maybe(secret_key_ref()),
            )
        ),
        maintenance=maybe(_mapping(enabled=maybe(st.booleans()), schedule=maybe(cron()))),
        upgrade=maybe(
            _mapping(
                preUpgradeBackup=maybe(st.booleans()),
                autoRollback=maybe(st.booleans()),
                progressDeadlineSeconds=maybe(st.integers(30, 86400)),
                migrationCommand=maybe(
                    st.lists(st.sampled_from(["alembic", "upgrade", "head", "-x"]), min_size=1)
                ),
                rollbackStrategy=maybe(st.sampled_from(["downgrade", "restore"])),
            )
        ),
        monitoring=maybe(
            _mapping(
                serviceMonitor=maybe(st.booleans()),
                prometheusRule=maybe(st.booleans()),
                grafanaDashboard=maybe(st.booleans()),
                scrapeInterval=maybe(st.sampled_from(["15s", "1m", "500ms", "2h"])),
                enableTracing=maybe(st.booleans()),
                jaegerAgentPort=maybe(st.integers(1, 65535)),
                sentryDsnSecretRef=maybe(secret_key_ref()),
            )
        ),
        ingress=maybe(
            _mapping(
                enabled=maybe(st.booleans()),
                className=maybe(st.sampled_from(["nginx", "traefik"])),
                host=maybe(dns_subdomain()),
                tls=maybe(
                    _mapping(
                        enabled=maybe(st.booleans()),
                        secretName=maybe(dns_subdomain()),
                        clusterIssuer=maybe(st.sampled_from(["", "letsencrypt-prod"])),
                    )
                ),
            )
        ),
        networkPolicy=maybe(
            _mapping(
                enabled=maybe(st.booleans()),
                ingressNamespaces=maybe(st.lists(dns_label(), max_size=3, unique=True)),
            )
        ),
        email=maybe(
            _mapping(
                smtpHost=st.sampled_from(["smtp.example.com", "mail"]),
                smtpPort=maybe(st.integers(1, 65535)),
                fromEmail=maybe(st.sampled_from(["", "ops@example.com"])),
                passwordSecretRef=maybe(secret_key_ref()),
            )
        ),
        env=maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": word(_UPPER, _UPPER + string.digits, 15),
                        "value": st.text(string.printable, max_size=10),
                    }
                ),
                max_size=3,
                unique_by=lambda e: e["name"],
            )
        ),
        paused=maybe(st.booleans()),
    )


# --- SchedulingProblem ------------------------------------------------------------------------
@st.composite
def problem_data(draw: st.DrawFn, max_jobs: int = 4, max_tasks: int = 3) -> Doc:
    """A consistent problem (references resolve), small enough to solve in a second."""
    machines = draw(st.lists(token(), min_size=1, max_size=4, unique=True))
    skills = draw(st.lists(token(), max_size=3, unique=True))
    operators = [
        {"name": name, "skills": draw(st.lists(st.sampled_from(skills), unique=True))}
        if skills
        else {"name": name}
        for name in draw(st.lists(token(), max_size=3, unique=True))
    ]
    known_skills = sorted({s for o in operators for s in o.get("skills", [])})
    jobs = []
    for name in draw(st.lists(token(), min_size=1, max_size=max_jobs, unique=True)):
        tasks = []
        for task_name in draw(st.lists(token(), min_size=1, max_size=max_tasks, unique=True)):
            eligible = draw(st.lists(st.sampled_from(machines), min_size=1, unique=True))
            task: Doc = {
                "name": task_name,
                "duration": draw(st.integers(1, 50)),
                "machines": eligible,
            }
            if len(eligible) > 1 and draw(st.booleans()):
                task["machineDurations"] = {eligible[-1]: draw(st.integers(1, 50))}
            if known_skills and draw(st.booleans()):
                task["skill"] = draw(st.sampled_from(known_skills))
            tasks.append(task)
        job: Doc = {"name": name, "tasks": tasks}
        if draw(st.booleans()):
            job["priority"] = draw(st.integers(1, 1000))
        release = draw(st.integers(0, 100))
        if draw(st.booleans()):
            job["releaseDate"] = release
        if draw(st.booleans()):
            job["dueDate"] = release + draw(st.integers(0, 300))
        jobs.append(job)
    data: Doc = {"machines": [{"name": m} for m in machines], "jobs": jobs}
    if operators:
        data["operators"] = operators
    if draw(st.booleans()):
        start = draw(st.integers(0, 200))
        data["machines"][0]["unavailable"] = [
            {"start": start, "end": start + draw(st.integers(1, 30))}
        ]
        data["machines"][0]["zone"] = draw(st.sampled_from(["", "hall-a"]))
    objective = draw(st.sampled_from(["makespan", "weightedTardiness", "weightedSum", None]))
    if objective is not None:
        data["objective"] = {"type": objective}
        if objective == "weightedSum":
            data["objective"]["weights"] = {
                "makespan": draw(st.integers(0, 10)),
                "tardiness": draw(st.integers(0, 10)),
            }
    if draw(st.booleans()):
        data["horizon"] = draw(st.integers(10**6, 10**7))  # loose enough to stay feasible
    return data


def solver_overrides() -> st.SearchStrategy[Doc]:
    return _mapping(
        maxTimeSeconds=maybe(st.sampled_from([1, 0.5, 60, 3600.5])),
        numWorkers=maybe(st.integers(1, 8)),
        memoryLimitMB=maybe(st.integers(256, 16384)),
        useLNS=maybe(st.booleans()),
        seed=maybe(st.integers(0, 2**31 - 1)),
    )


@st.composite
def problem_spec(draw: st.DrawFn) -> Doc:
    spec: Doc = {"engineRef": {"name": "prod"}, **draw(problem_data())}
    overrides = draw(maybe(solver_overrides()))
    if overrides is not _ABSENT:
        spec["solver"] = overrides
    return spec


# --- VulcanBackup, VulcanRestore ---------------------------------------------------------------
def backup_spec() -> st.SearchStrategy[Doc]:
    # No storage: a VulcanBackup writes where its engine's spec.backup.storage says.
    return _mapping(engineRef=st.just({"name": "prod"}))


@st.composite
def restore_spec(draw: st.DrawFn) -> Doc:
    spec: Doc = {"engineRef": {"name": draw(dns_subdomain())}}
    if draw(st.booleans()):
        spec["backupRef"] = {"name": draw(dns_subdomain())}
    else:
        spec["location"] = draw(
            st.sampled_from(
                [
                    "s3://vulcan-backups/database/vulcan/prod/vulcan_20261129_020000.dump",
                    "pvc://prod-backups/vulcan/prod/on-demand/vulcan_x.dump",
                    "s3://b.c-d/a/b/c",
                ]
            )
        )
        spec["checksum"] = draw(st.sampled_from(["9f" * 32, "0" * 64]))
    if draw(st.booleans()):
        spec["targetDatabase"] = draw(word(_LOWER, _LOWER + string.digits, 20))
    if draw(st.booleans()):
        spec["migrate"] = draw(st.booleans())
    return spec


SPECS = {
    "VulcanEngine": engine_spec,
    "SchedulingProblem": problem_spec,
    "VulcanBackup": backup_spec,
    "VulcanRestore": restore_spec,
}


@st.composite
def valid_doc(draw: st.DrawFn, kind: str, namespace: str | None = "fuzz") -> Doc:
    metadata: Doc = {"name": draw(dns_label(30))}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "spec": draw(SPECS[kind]()),
    }


# --- mutations --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Broken:
    """An invalid document: `path` is the field it breaks, `how` the kind of mutation."""

    doc: Any
    path: str
    how: str

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"Broken(how={self.how!r}, path={self.path!r}, doc={self.doc!r})"


Path = tuple[str | int, ...]


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def leaves(value: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """Every (path, value) below `value`, containers included."""
    out: list[tuple[Path, Any]] = [(path, value)] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += leaves(item, (*path, i))
    return out


def get_at(doc: Any, path: Path) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def set_at(doc: Any, path: Path, value: Any) -> None:
    get_at(doc, path[:-1])[path[-1]] = value


def delete_at(doc: Any, path: Path) -> None:
    del get_at(doc, path[:-1])[path[-1]]


# Fields whose value is free-form (a user's env entry, a map of machine durations keyed by
# name) or where a wrong type is not wrong: mutations stay out of them.
_FREE = re.compile(r"^spec\.env\[\d+\]")
# (field path regex, type): what each leaf is, for wrong-type mutations.
_FLOAT_FIELDS = re.compile(r"maxTimeSeconds$")
_QUANTITY = re.compile(r"^spec\.resources\.(requests|limits)\.|\.size$")


def _wrong_types(path: str, value: Any) -> list[Any]:
    """Values of another JSON type than `value` that the field refuses."""
    if _QUANTITY.search(path):
        return [[1], {"a": 1}, True, 1.5]
    if isinstance(value, bool):
        return ["true", 1, [True], {"enabled": True}]
    if isinstance(value, int):
        if _FLOAT_FIELDS.search(path):
            return ["60", [1], True]
        return [str(value), float(value) + 0.5, [value], True]
    if isinstance(value, float):
        return [str(value), [value], True]
    if isinstance(value, str):
        return [1, True, [value], {"value": value}]
    if isinstance(value, list):
        return ["x", 1, {"0": value[0]} if value else {"a": 1}]
    if isinstance(value, dict):
        return ["x", 1, [value]]
    return [1]


# (path regex, low, high): numeric bounds of the models.
_BOUNDS = [
    (r"^spec\.replicas$", 1, 1000),
    (r"^spec\.autoscaling\.(min|max)Replicas$", 1, 1000),
    (r"Utilization", 1, 100),
    (r"^spec\.database\.poolSize$", 5, 100),
    (r"^spec\.database\.maxOverflow$", 0, 500),
    (r"^spec\.database\.poolTimeoutSeconds$", 1, 3600),
    (r"^spec\.database\.poolRecycleSeconds$", 60, 86400),
    (r"^spec\.redis\.maxConnections$", 1, 10000),
    (r"^spec\.jwt\.accessTokenExpireMinutes$", 1, 1440),
    (r"^spec\.jwt\.refreshTokenExpireDays$", 1, 365),
    (r"^spec\.solver\.numWorkers$", 1, 64),
    (r"^spec\.solver\.memoryLimitMB$", 256, 1_048_576),
    (r"^spec\.solver\.maxConcurrentJobs$", 1, 1000),
    (r"^spec\.backup\.retentionDays$", 1, 3650),
    (r"^spec\.upgrade\.progressDeadlineSeconds$", 30, 86400),
    (r"Port$", 1, 65535),
    (r"\.priority$", 1, 1000),
    (r"\.duration$", 1, 10**9),
    (r"^spec\.solver\.seed$", 0, 2**31 - 1),
]
_ENUMS = [
    r"^spec\.imagePullPolicy$",
    r"^spec\.environment$",
    r"^spec\.jwt\.algorithm$",
    r"^spec\.upgrade\.rollbackStrategy$",
    r"^spec\.objective\.type$",
]
# Required fields, by path regex (deleting them must be refused).
_REQUIRED = [
    r"^spec$",
    r"^metadata$",
    r"^metadata\.name$",
    r"^spec\.version$",
    r"^spec\.engineRef$",
    r"^spec\.engineRef\.name$",
    r"^spec\.jobs\[\d+\]\.(name|tasks)$",
    r"^spec\.jobs\[\d+\]\.tasks\[\d+\]\.(name|duration|machines)$",
    r"^spec\.machines\[\d+\]\.name$",
    r"^spec\.backup\.storage\.s3\.(bucket|credentialsSecretRef)$",
    r"^spec\.storage\.s3\.(bucket|credentialsSecretRef)$",
    r".*SecretRef\.name$",
    r".*KeyRef\.key$",
    r"^spec\.email\.smtpHost$",
]


def _matches(patterns: list[str], path: str) -> bool:
    return any(re.search(p, path) for p in patterns)


@st.composite
def mutate(draw: st.DrawFn, doc: Doc) -> Broken:
    """One mutation of a valid document that the models must refuse."""
    doc = copy.deepcopy(doc)
    kind = doc["kind"]
    spots = [(p, v) for p, v in leaves(doc) if p[0] in ("spec", "metadata")]
    spots = [(p, v) for p, v in spots if not _FREE.match(dotted(p))]
    choices = ["unknown-field", "wrong-type", "wrong-nesting", "missing-required", "top-level"]
    numbers = [
        (p, lo, hi)
        for p, v in spots
        if isinstance(v, int) and not isinstance(v, bool)
        for rx, lo, hi in _BOUNDS
        if re.search(rx, dotted(p))
    ]
    enums = [p for p, v in spots if isinstance(v, str) and _matches(_ENUMS, dotted(p))]
    required = [p for p, _ in spots if _matches(_REQUIRED, dotted(p))] + [("spec",), ("metadata",)]
    if numbers:
        choices.append("out-of-range")
    if enums:
        choices.append("bad-enum")
    if kind == "VulcanEngine":
        choices += ["bad-cron", "cross-field"]
    if kind == "SchedulingProblem":
        choices += ["broken-reference", "broken-reference"]
    if kind in ("VulcanBackup", "VulcanRestore"):
        choices.append("exclusive-fields")
    how = draw(st.sampled_from(choices))

    if how == "unknown-field":
        holders = [p for p, v in spots if isinstance(v, dict) and not _FREE.match(dotted(p))]
        holders = [p for p in holders if p[-1] not in ("metadata", "requests", "limits")]
        holders = [p for p in holders if p[-1] != "machineDurations"]
        where = draw(st.sampled_from([("spec",), *holders]))
        name = draw(st.sampled_from(["bogus", "replica", "Version", "extra_field", "x-y"]))
        get_at(doc, where)[name] = draw(st.sampled_from([1, "x", True, {"a": 1}]))
        return Broken(doc, dotted((*where, name)), how)
    if how == "wrong-type":
        typed = [(p, v) for p, v in spots if len(p) > 1 and not _FREE.match(dotted(p))]
        typed = [(p, v) for p, v in typed if p[0] == "spec" or p == ("metadata", "name")]
        typed = [
            (p, v) for p, v in typed if not (isinstance(p[-1], str) and p[-2] == "machineDurations")
        ]
        path, value = draw(st.sampled_from(typed))
        set_at(doc, path, draw(st.sampled_from(_wrong_types(dotted(path), value))))
        return Broken(doc, dotted(path), how)
    if how == "out-of-range":
        path, lo, hi = draw(st.sampled_from(numbers))
        set_at(doc, path, draw(st.sampled_from([lo - 1, hi + 1, -(10**12), 10**12])))
        return Broken(doc, dotted(path), how)
    if how == "bad-enum":
        path = draw(st.sampled_from(enums))
        set_at(doc, path, draw(st.sampled_from(["none", "Prod", "ALWAYS", "", "makespan2"])))
        return Broken(doc, dotted(path), how)
    if how == "bad-cron":
        section = draw(st.sampled_from(["backup", "maintenance"]))
        doc["spec"].setdefault(section, {})["schedule"] = draw(st.sampled_from(BAD_CRONS))
        return Broken(doc, f"spec.{section}.schedule", how)
    if how == "cross-field":
        which = draw(st.sampled_from(["autoscaling", "storage", "resources"]))
        if which == "resources":  # a request above its limit, given or defaulted
            doc["spec"]["resources"] = draw(
                st.sampled_from(
                    [
                        {"limits": {"cpu": "500m"}},
                        {"requests": {"memory": "8Gi"}},
                        {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}},
                    ]
                )
            )
            return Broken(doc, "spec.resources", how)
        if which == "autoscaling":
            doc["spec"]["autoscaling"] = {"minReplicas": 9, "maxReplicas": draw(st.integers(1, 8))}
            return Broken(doc, "spec.autoscaling", how)
        doc["spec"].setdefault("backup", {})["storage"] = draw(
            st.sampled_from(
                [
                    {},
                    {"pvc": {}, "s3": {"bucket": "abc", "credentialsSecretRef": {"name": "c"}}},
                ]
            )
        )
        return Broken(doc, "spec.backup.storage", how)
    if how == "missing-required":
        path = draw(st.sampled_from(required))
        delete_at(doc, path)
        return Broken(doc, dotted(path), how)
    if how == "wrong-nesting":
        containers = [
            (p, v) for p, v in spots if isinstance(v, dict | list) and not _FREE.match(dotted(p))
        ]
        containers = [(p, v) for p, v in containers if p != ("metadata",)]
        containers = [(p, v) for p, v in containers if p[-1] != "machineDurations"]
        path, value = draw(st.sampled_from(containers))
        if isinstance(value, dict):
            set_at(doc, path, [value])
        elif value:
            set_at(doc, path, {"items": value})
        else:
            set_at(doc, path, {})
        return Broken(doc, dotted(path), how)
    if how == "broken-reference":
        return _broken_reference(draw, doc)
    if how == "exclusive-fields":
        spec = doc["spec"]
        if kind == "VulcanRestore":
            if "backupRef" in spec:
                spec["location"] = "s3://vulcan-backups/x.sql.gz"
            else:
                spec["backupRef"] = {"name": "b"}
            return Broken(doc, "spec", how)
        spec["storage"] = {
            "pvc": {},
            "s3": {"bucket": "abc", "credentialsSecretRef": {"name": "c"}},
        }
        return Broken(doc, "spec.storage", how)
    # top-level: the document itself is not one of ours
    variant = draw(st.sampled_from(["apiVersion", "kind", "not-a-mapping", "no-metadata-name"]))
    if variant == "apiVersion":
        doc["apiVersion"] = draw(st.sampled_from(["vulcan-engine.com/v1", "v1", "apps/v1"]))
        return Broken(doc, "apiVersion", how)
    if variant == "kind":
        doc["kind"] = draw(st.sampled_from(["VulcanEngines", "Engine", "vulcanengine"]))
        return Broken(doc, "kind", how)
    if variant == "not-a-mapping":
        return Broken(draw(st.sampled_from([[doc], "VulcanEngine", 42])), "", how)
    doc["metadata"] = {"name": draw(st.sampled_from(["Prod", "prod_1", "-a", "a" * 254, ""]))}
    return Broken(doc, "metadata.name", how)


def _broken_reference(draw: st.DrawFn, doc: Doc) -> Broken:
    spec = doc["spec"]
    j = draw(st.integers(0, len(spec["jobs"]) - 1))
    job = spec["jobs"][j]
    t = draw(st.integers(0, len(job["tasks"]) - 1))
    task = job["tasks"][t]
    at = f"spec.jobs[{j}].tasks[{t}]"
    what = draw(
        st.sampled_from(
            [
                "unknown-machine",
                "skill",
                "durations",
                "dup-job",
                "dup-task",
                "dup-machine",
                "due",
                "window",
            ]
        )
    )
    if what == "unknown-machine":
        task["machines"].append("no-such-machine")
        return Broken(doc, f"{at}.machines", what)
    if what == "skill":
        task["skill"] = "a-skill-nobody-has"
        return Broken(doc, f"{at}.skill", what)
    if what == "durations":
        task["machineDurations"] = {"not-eligible": 5}
        return Broken(doc, f"{at}.machineDurations", what)
    if what == "dup-job":
        spec["jobs"].append(copy.deepcopy(job))
        return Broken(doc, "spec.jobs", what)
    if what == "dup-task":
        job["tasks"].append(copy.deepcopy(task))
        return Broken(doc, f"spec.jobs[{j}].tasks", what)
    if what == "dup-machine":
        spec["machines"].append(copy.deepcopy(spec["machines"][0]))
        return Broken(doc, "spec.machines", what)
    if what == "due":
        job["releaseDate"] = 100
        job["dueDate"] = 50
        return Broken(doc, f"spec.jobs[{j}].dueDate", what)
    spec["machines"][0]["unavailable"] = [{"start": 10, "end": draw(st.sampled_from([10, 5]))}]
    return Broken(doc, "spec.machines[0].unavailable[0]", what)


@st.composite
def invalid_doc(draw: st.DrawFn, kind: str, namespace: str | None = "fuzz") -> Broken:
    return draw(mutate(draw(valid_doc(kind, namespace))))


# --- bare problems for `solve` -----------------------------------------------------------------
def solver_problem() -> st.SearchStrategy[Doc]:
    return problem_data()


@st.composite
def invalid_solver_problem(draw: st.DrawFn) -> Broken:
    """A SchedulingProblem resource (spec = a small problem) with one mutation in its spec."""
    while True:
        broken = draw(mutate(draw(valid_doc("SchedulingProblem"))))
        if broken.how == "top-level" or not broken.path.startswith("spec"):
            continue  # `solve` reads spec only
        if broken.path.startswith(("spec.engineRef", "spec.solver")) or broken.path == "spec":
            continue  # not part of the problem (engineRef), or no problem at all
        return broken


# --- reporting ----------------------------------------------------------------------------------
def report(config: Any, lines: list[str]) -> None:
    """Print past pytest's output capture (the counts of a fuzz module, for the README), and
    append them as JSON lines to $VULCAN_FUZZ_SUMMARY when set."""
    import json
    import os
    import sys

    capture = config.pluginmanager.getplugin("capturemanager")
    context = capture.global_and_fixture_disabled() if capture else None
    if context is not None:
        with context:
            print("\n" + "\n".join(lines), file=sys.stderr, flush=True)
    target = os.environ.get("VULCAN_FUZZ_SUMMARY")
    if target:
        with open(target, "a") as out:
            for line in lines:
                out.write(json.dumps(line) + "\n")


def related(named: str, broken: str) -> bool:
    """A message naming `named` points at the `broken` field: the field itself, an ancestor (a
    check across fields) or a descendant (the broken value's own fields)."""
    if named == broken:
        return True
    return any(
        a and (b.startswith(a + ".") or b.startswith(a + "["))
        for a, b in ((named, broken), (broken, named))
    )


def fields_named(message: str) -> list[str]:
    """The field paths a '; '-joined list of '<path>: <what>' problems names."""
    return re.findall(r"(?:^|; )([A-Za-z][\w-]*(?:\[\d+\])*(?:\.[\w-]+(?:\[\d+\])*)*): ", message)
