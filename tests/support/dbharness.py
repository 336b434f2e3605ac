"""Run the operator's database programs the way a pod runs them, and compare databases.

    from tests.support.dbharness import Runner, fingerprint, seed

The program text comes from `vulcan_operator.jobscripts.program(name)`, the very text the
CronJobs and Jobs carry (or, when VULCAN_TEST_SCRIPTS_DIR names a folder holding other
versions of the `*.sh` parts, e.g. `git show c37051b:...` copies, the same program assembled
from those: how the attack tests are shown to fail on older scripts), run as
`<shell> -c <text> <name>` in an environment as bare as a pod's: only the variables given,
PATH with the test server's client programs. Shells: `dash` (POSIX) always; `busybox` when
installed, with ONLY busybox applets and the PostgreSQL client programs on PATH, as in
`postgres:15-alpine`.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from vulcan_operator.jobscripts import PROGRAMS, _compact, program

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "db"
SEED_SQL = DATA_DIR / "seed.sql"
TIMEOUT = 60

SEED_REVISION = "4f2a9c1d7e3b"


SCRIPTS_DIR_ENV = "VULCAN_TEST_SCRIPTS_DIR"


def program_text(name: str) -> str:
    """The program a pod runs, or the same program built from $VULCAN_TEST_SCRIPTS_DIR."""
    other = os.environ.get(SCRIPTS_DIR_ENV)
    if not other:
        return program(name)
    parts, entry = PROGRAMS[name]
    body = "\n".join(_compact((Path(other) / part).read_text()) for part in parts)
    return f'{body}\n{entry} "$@"\n'


def shells() -> list[str]:
    """The shells to run the programs with: dash, and busybox's ash when installed."""
    return ["dash"] + (["busybox"] if shutil.which("busybox") else [])


@functools.cache
def busybox_applets() -> Path:
    """A folder of symlinks to every busybox applet (an Alpine-like userland), made once."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox is not installed")
    directory = Path(tempfile.mkdtemp(prefix="vulcan-busybox-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    listing = subprocess.run(
        [busybox, "--list"], capture_output=True, text=True, check=True, timeout=TIMEOUT
    ).stdout.split()
    for applet in listing:
        (directory / applet).symlink_to(busybox)
    return directory


@dataclass
class Run:
    """One finished program run."""

    args: list[str]
    code: int
    stdout: str
    stderr: str
    termination: str

    @property
    def result(self) -> dict[str, Any]:
        """The program's last stdout line, parsed (it must be a JSON object)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert lines, f"no output on stdout; stderr:\n{self.stderr}"
        value = json.loads(lines[-1])
        assert isinstance(value, dict)
        return value

    @property
    def everything(self) -> str:
        """stdout, stderr and the termination message together (for secret scans)."""
        return "\n".join((self.stdout, self.stderr, self.termination))

    def explain(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Runner:
    """Runs programs with a shell, a PATH and a private temp dir, like a pod would."""

    pg_bin_dir: Path
    work: Path
    shell: str = "dash"
    extra_path: list[Path] = field(default_factory=list)

    def path(self) -> str:
        front = [str(p) for p in self.extra_path]
        if self.shell == "busybox":
            return ":".join([*front, str(busybox_applets()), str(self.pg_bin_dir)])
        return ":".join([*front, str(self.pg_bin_dir), "/usr/local/bin", "/usr/bin", "/bin"])

    def argv(self, name: str) -> list[str]:
        text = program_text(name)
        if self.shell == "busybox":
            return [shutil.which("busybox") or "busybox", "sh", "-c", text, name]
        return [shutil.which(self.shell) or self.shell, "-c", text, name]

    def __call__(self, name: str, env: Mapping[str, str] | None = None, **more: str) -> Run:
        tmp = self.work / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        termination = self.work / "termination-log"
        termination.write_text("")
        full = {
            "PATH": self.path(),
            "HOME": str(tmp),
            "TMPDIR": str(tmp),
            "TERMINATION_LOG": str(termination),
            **(env or {}),
            **more,
        }
        argv = self.argv(name)
        proc = subprocess.run(
            argv,
            env=full,
            cwd=self.work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        leftovers = list(tmp.iterdir())
        assert not leftovers, f"{name} left temp files behind: {leftovers}"
        return Run(argv, proc.returncode, proc.stdout, proc.stderr, termination.read_text())


# --- databases ------------------------------------------------------------------------------
def seed(dsn: str) -> None:
    """Load the seed (tests/data/db/seed.sql) into the database at `dsn`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SEED_SQL.read_text().encode())


def user_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def fingerprint(dsn: str) -> dict[str, Any]:
    """Everything a restore must bring back: per table the row count and an md5 of the rows
    in a fixed order; constraints, indexes, views and sequence positions."""
    out: dict[str, Any] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema, table in user_tables(conn):
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
                " FROM {}.{} AS t"
            ).format(sql.Identifier(schema), sql.Identifier(table))
            row = conn.execute(query).fetchone()
            assert row is not None
            out[f"{schema}.{table}"] = (row[0], row[1])
        out["@constraints"] = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
        ).fetchall()
        out["@indexes"] = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        out["@views"] = conn.execute(
            "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        out["@sequences"] = conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' "
            "ORDER BY 1"
        ).fetchall()
    return out


def row_counts(dsn: str) -> dict[str, int]:
    """Rows per user table ("schema.table" outside public)."""
    counts: dict[str, int] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema, table in user_tables(conn):
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            row = conn.execute(query).fetchone()
            assert row is not None
            counts[table if schema == "public" else f"{schema}.{table}"] = int(row[0])
    return counts


# --- a webhook receiver ---------------------------------------------------------------------
@contextmanager
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server recording the JSON bodies POSTed to it: (url, bodies)."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) or b"{}"
            try:
                bodies.append(json.loads(raw))
            except ValueError:
                bodies.append({"invalid": raw.decode("utf-8", "replace")})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        # A token in the path, as Slack webhook URLs have: it must never be printed.
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN-s3cr3t-path", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- a fake `aws` CLI over a local folder ---------------------------------------------------
FAKE_AWS = r'''#!@PYTHON@
"""aws s3 cp|ls|rm, s3api head-object over a local folder ($FAKE_S3_ROOT/<bucket>/<key>).
Logs each call."""
import os, sys, shutil, time
root = os.environ["FAKE_S3_ROOT"]
args = sys.argv[1:]
with open(os.path.join(root, "calls.log"), "a") as log:
    log.write(" ".join(args) + "\n")
    log.write("ENV " + " ".join(sorted(k for k in os.environ if k.startswith("AWS_"))) + "\n")
if args[:1] == ["--endpoint-url"]:
    args = args[2:]
def local(uri):
    assert uri.startswith("s3://"), uri
    return os.path.join(root, uri[5:])
if args[:2] == ["s3api", "head-object"]:
    opts = dict(zip(args[2::2], args[3::2]))
    path = local(f"s3://{opts['--bucket']}/{opts['--key']}")
    if os.path.isfile(path):
        print('{"ContentLength": %d}' % os.path.getsize(path))
        sys.exit(0)
    sys.exit("An error occurred (404) when calling the HeadObject operation: Not Found")
if args[:1] != ["s3"]:
    sys.exit("fake aws: only `aws s3` and `aws s3api head-object` are supported")
command, rest = args[1], [a for a in args[2:] if a != "--only-show-errors"]
if command == "cp":
    src, dst = rest
    src_path = local(src) if src.startswith("s3://") else src
    dst_path = local(dst) if dst.startswith("s3://") else dst
    if not os.path.isfile(src_path):
        sys.exit(f"fatal error: An error occurred (404) ... Key {src!r} does not exist")
    os.makedirs(os.path.dirname(dst_path), exist_ok=True)
    shutil.copyfile(src_path, dst_path)
elif command == "rm":
    (uri,) = rest
    if os.path.isfile(local(uri)):
        os.remove(local(uri))
elif command == "ls":
    (uri,) = rest
    path = local(uri)
    folder, start = (path, "") if uri.endswith("/") else os.path.split(path)
    found = False
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if not name.startswith(start):
                continue
            full = os.path.join(folder, name)
            found = True
            if os.path.isdir(full):
                print(f"{'PRE':>30} {name}/")
            else:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(full)))
                print(f"{stamp} {os.path.getsize(full):>10} {name}")
    sys.exit(0 if found else 1)
else:
    sys.exit(f"fake aws: unsupported command {command}")
'''


def fake_aws(bin_dir: Path) -> Path:
    """Write the fake `aws` into bin_dir (put it first on PATH; set FAKE_S3_ROOT)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "aws"
    path.write_text(FAKE_AWS.replace("@PYTHON@", sys.executable))
    path.chmod(0o755)
    return path


# --- seeded databases -----------------------------------------------------------------------
def create_seeded_template(server: Any, label: str) -> str:
    """A seeded database to copy test databases from (CREATE DATABASE ... TEMPLATE)."""
    db = server.create_database(label=label)
    seed(db.dsn)
    return str(db.dbname)


def dsn_for(db: Any, dbname: str) -> str:
    """The DSN of another database on the same server, with the same credentials."""
    return str(db.dsn).rsplit("/", 1)[0] + "/" + dbname
