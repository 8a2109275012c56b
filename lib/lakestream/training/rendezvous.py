"""Barrier syncs of xgboost.spark without Spark's one-second poll: a rendezvous served by the driver.

Spark 4.2's ``BarrierTaskContext.barrier()`` and ``allGather()`` send their request to the driver's
BarrierCoordinator and then check for the answer once a second (``Thread.sleep(1000)`` in
``BarrierTaskContext.runBarrier``), so every sync costs a whole second even when all tasks are already there.
An xgboost.spark fit makes three (the start of the gang, an allGather of the workers' settings, the end of
training): about 3 s of a 10 s fit of the book's 920k prequential rows on 2 cores.

``driver_rendezvous(spark)`` wraps a fit: it starts a small TCP rendezvous on the driver (the host the XGBoost
tracker also listens on) and announces its address and a secret token to the fit's tasks in a Spark local
property. In the Python workers, importing this module replaces ``BarrierTaskContext.barrier`` and
``allGather`` with versions that, when the task carries that property, meet through the driver's rendezvous
instead (same contract: every task of the stage blocks until all have arrived, allGather returns the messages
in partition order); tasks without the property use Spark's own. The import happens when the worker unpickles
the fit's training function, because the fit passes a ``RendezvousCallback`` (an XGBoost callback that does
nothing else) among its callbacks.

A rendezvous is keyed by the stage and the number of syncs the task made so far. A task attempt that replaces
an earlier attempt of the same partition (a retried barrier stage) takes that attempt's place, and a member
whose connection has closed (a killed task) is dropped before a sync is released.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import xgboost as xgb
from pyspark.taskcontext import BarrierTaskContext

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROPERTY = "lakestream.xgboost.rendezvous"  # Spark local property: "host:port:token" of the driver's rendezvous
_REQUEST_TIMEOUT = 30.0  # seconds a connection may take to send its one-line request
_REQUEST_FIELDS = {"token", "stage", "sync", "partition", "tasks", "attempt", "message"}
logger = logging.getLogger(__name__)


class _Member:
    """One task waiting at a sync: its connection, attempt id and message."""

    def __init__(self, conn: socket.socket, attempt: int, message: str) -> None:
        self.conn, self.attempt, self.message = conn, attempt, message

    def alive(self) -> bool:
        """False once the task's side of the connection has closed (the task was killed or failed)."""
        try:
            return self.conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def answer(self, payload: bytes) -> None:
        """Send the sync's result and hang up (a member that died meanwhile fails on its own)."""
        try:
            self.conn.sendall(payload)
        except OSError:
            pass
        finally:
            self.conn.close()


class RendezvousServer:
    """The driver's side: groups the tasks' requests by (stage, sync number), answers a group once complete."""

    def __init__(self, host: str) -> None:
        self.token = secrets.token_hex(16)
        self._server = socket.create_server((host, 0))
        self.address = f"{host}:{self._server.getsockname()[1]}:{self.token}"
        self._groups: dict[tuple[int, int], dict[int, _Member]] = {}
        self._lock = threading.Lock()
        self.syncs_served = 0
        self._thread = threading.Thread(target=self._accept, name="xgboost-rendezvous", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), name="xgboost-rendezvous-task", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(_REQUEST_TIMEOUT)  # a task sends its request as soon as it connects
            line = conn.makefile("rb").readline()
            conn.settimeout(None)  # then waits as long as the slowest task of its stage
            request = json.loads(line)
            if not isinstance(request, dict) or not request.keys() >= _REQUEST_FIELDS:
                raise ValueError(f"not a sync request: {line[:200]!r}")
            if request["token"] != self.token:
                raise ValueError("wrong token")
        except (OSError, ValueError) as err:
            logger.warning("xgboost rendezvous: refused a request (%s)", err)
            conn.close()
            return
        self._join(conn, request)

    def _join(self, conn: socket.socket, request: dict[str, Any]) -> None:
        key = (int(request["stage"]), int(request["sync"]))
        partition, tasks = int(request["partition"]), int(request["tasks"])
        with self._lock:
            group = self._groups.setdefault(key, {})
            stale = group.get(partition)
            if stale is not None and stale.attempt != int(request["attempt"]):
                stale.conn.close()  # an earlier attempt of this partition: the retried task takes its place
            group[partition] = _Member(conn, int(request["attempt"]), str(request["message"]))
            for dead in [p for p, member in group.items() if not member.alive()]:
                group.pop(dead).conn.close()
            if len(group) < tasks:
                return
            del self._groups[key]
            self.syncs_served += 1
        payload = (json.dumps([group[p].message for p in sorted(group)]) + "\n").encode()
        for member in group.values():
            member.answer(payload)

    def close(self) -> None:
        """Stop accepting and hang up on anyone still waiting (their sync fails with a clear error)."""
        self._server.close()
        with self._lock:
            for group in self._groups.values():
                for member in group.values():
                    member.conn.close()
            self._groups.clear()


@contextmanager
def driver_rendezvous(spark: SparkSession) -> Iterator[RendezvousServer]:
    """Serve the barrier syncs of the jobs this thread starts meanwhile (on a server it yields)."""
    context = spark.sparkContext
    host = context.getConf().get("spark.driver.host") or "127.0.0.1"
    server = RendezvousServer(host)
    previous = context.getLocalProperty(PROPERTY)
    context.setLocalProperty(PROPERTY, server.address)
    try:
        yield server
    finally:
        context.setLocalProperty(PROPERTY, previous)  # type: ignore[arg-type]  # None removes it
        server.close()


_syncs_made: dict[int, int] = {}  # task attempt id -> syncs it made so far (in this Python worker)


def meet(address: str, *, stage: int, partition: int, tasks: int, attempt: int, message: str) -> list[str]:
    """Join the rendezvous at `address` for this task attempt's next sync; all tasks' messages, partition order."""
    host, port, token = address.rsplit(":", 2)
    sync = _syncs_made.get(attempt, 0)
    _syncs_made[attempt] = sync + 1
    request = {"token": token, "stage": stage, "sync": sync, "partition": partition, "tasks": tasks}
    request |= {"attempt": attempt, "message": message}
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall((json.dumps(request) + "\n").encode())
        reply = conn.makefile("rb").readline()
    if not reply:
        raise RuntimeError(
            f"the driver's xgboost rendezvous at {host}:{port} hung up before sync {sync} of stage {stage} "
            "completed (the fit was cancelled, another task of the stage failed, or the request was refused)"
        )
    return json.loads(reply)


def _meet_as(context: BarrierTaskContext, address: str, message: str) -> list[str]:
    return meet(
        address,
        stage=context.stageId(),
        partition=context.partitionId(),
        tasks=len(context.getTaskInfos()),
        attempt=context.taskAttemptId(),
        message=message,
    )


def _install() -> None:
    """Route BarrierTaskContext syncs through the driver's rendezvous for tasks that carry its address."""
    if getattr(BarrierTaskContext, "_lakestream_rendezvous", False):
        return
    spark_barrier = BarrierTaskContext.barrier
    spark_all_gather = BarrierTaskContext.allGather

    def barrier(self: BarrierTaskContext) -> None:
        address = self.getLocalProperty(PROPERTY)
        if address is None:
            return spark_barrier(self)
        _meet_as(self, address, "")
        return None

    def all_gather(self: BarrierTaskContext, message: str = "") -> list[str]:
        address = self.getLocalProperty(PROPERTY)
        if address is None:
            return spark_all_gather(self, message)
        if not isinstance(message, str):
            raise TypeError("Argument `message` must be of type `str`")
        return _meet_as(self, address, message)

    BarrierTaskContext.barrier = barrier  # type: ignore[method-assign]
    BarrierTaskContext.allGather = all_gather  # type: ignore[method-assign]
    BarrierTaskContext._lakestream_rendezvous = True  # type: ignore[attr-defined]


class RendezvousCallback(xgb.callback.TrainingCallback):
    """Brings this module into the xgboost.spark workers: unpickling it there imports (and installs) it."""


_install()
