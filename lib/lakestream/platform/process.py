"""Background services the project starts itself (Kafka broker, MLflow server, Spark cluster daemons).

A service is a detached process with a pid file and a log file under the state folder. Starting an
already running service is a no-op; a port held by some other process is refused with a clear error;
stopping sends SIGTERM, waits, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lakestream.errors import PortInUseError, ServiceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceStatus:
    """What `status` reports about a service."""

    name: str
    running: bool
    pid: int | None
    address: str
    log_file: Path

    def describe(self) -> str:
        """A one-line human summary."""
        if self.running:
            return f"{self.name}: running (pid {self.pid}) on {self.address}; log {self.log_file}"
        return f"{self.name}: stopped"


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_is_alive(pid: int) -> bool:
    """True if a process with this pid exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited = 0
    return waited == 0 and _state_of(pid) != "Z"


def _state_of(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests and side-by-side runs)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free TCP ports: each socket stays bound until all are chosen (the OS may hand a just
    released port out again, so two free_port() calls in a row can return the same port)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@dataclass(frozen=True)
class ManagedService:
    """A detached background process identified by its pid file."""

    name: str
    run_dir: Path
    host: str
    port: int
    hint: str  # how to change the port, shown when it is taken

    @property
    def pid_file(self) -> Path:
        """Where the pid of the running process is kept."""
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """Where the process's stdout and stderr go."""
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of the running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_is_alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def status(self) -> ServiceStatus:
        """Running or not, with pid and address."""
        pid = self.pid()
        return ServiceStatus(self.name, pid is not None, pid, f"{self.host}:{self.port}", self.log_file)

    def start(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        ready: Callable[[], bool] | None = None,
        timeout_s: float = 60.0,
        extra_ports: Sequence[int] = (),
    ) -> ServiceStatus:
        """Start the process unless it runs already; wait until `ready()` (default: port open)."""
        current = self.status()
        if current.running:
            logger.info("%s already running (pid %s); nothing to do", self.name, current.pid)
            return current
        for port in (self.port, *extra_ports):
            if port_is_open(self.host, port):
                raise PortInUseError(
                    f"cannot start {self.name}: port {self.host}:{port} is already in use by another process "
                    f"(find it with `ss -ltnp 'sport = :{port}'`); stop it or {self.hint}"
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        logger.info("starting %s on %s:%s (log %s)", self.name, self.host, self.port, self.log_file)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        check = ready or (lambda: port_is_open(self.host, self.port))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise ServiceError(
                    f"{self.name} exited with code {process.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            if check():
                logger.info("%s is up (pid %d)", self.name, process.pid)
                return self.status()
            time.sleep(0.25)
        self.stop()
        raise ServiceError(
            f"{self.name} did not become ready within {timeout_s:.0f}s; last lines of {self.log_file}:\n"
            f"{tail(self.log_file)}"
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the process (SIGTERM to its process group, SIGKILL after the timeout); True if it ran."""
        pid = self.pid()
        if pid is None:
            logger.info("%s is not running", self.name)
            return False
        logger.info("stopping %s (pid %d)", self.name, pid)
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and pid_is_alive(pid):
            time.sleep(0.2)
        if pid_is_alive(pid):
            logger.warning("%s did not stop within %.0fs; killing it", self.name, timeout_s)
            _signal_group(pid, signal.SIGKILL)
            time.sleep(0.5)
        self.pid_file.unlink(missing_ok=True)
        logger.info("%s stopped", self.name)
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file (or a note that it is empty)."""
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(content[-lines:]) or "(empty log)"
