"""The driver's rendezvous for xgboost.spark's barrier syncs, over real sockets (no Spark)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lakestream.training.rendezvous import RendezvousServer, meet

_attempts = iter(range(10_000, 1_000_000))  # every joining "task" a fresh attempt id: its own sync count


@pytest.fixture
def server() -> Iterator[RendezvousServer]:
    server = RendezvousServer("127.0.0.1")
    yield server
    server.close()


def join_in_background(address: str, partition: int, message: str, *, attempt: int | None = None) -> dict:
    """Start a task's sync in a thread; the dict gets its answer (or error) when it returns."""
    outcome: dict = {}
    attempt = next(_attempts) if attempt is None else attempt

    def run() -> None:
        try:
            outcome["messages"] = meet(address, stage=7, partition=partition, tasks=2, attempt=attempt, message=message)
        except RuntimeError as err:
            outcome["error"] = str(err)

    outcome["thread"] = thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return outcome


def raw_join(server: RendezvousServer, partition: int, message: str, *, attempt: int, token: str | None = None):
    """A sync request sent by hand, its socket left open (a task that is waiting)."""
    host, port, real_token = server.address.rsplit(":", 2)
    conn = socket.create_connection((host, int(port)))
    request = {"token": token or real_token, "stage": 7, "sync": 0, "partition": partition, "tasks": 2}
    conn.sendall((json.dumps(request | {"attempt": attempt, "message": message}) + "\n").encode())
    return conn


def settle() -> None:
    time.sleep(0.3)  # the server's per-connection thread files the request


def waiting_then_completed(server: RendezvousServer, first: tuple[int, str], then: tuple[int, str]) -> list[list[str]]:
    """One task joins and must still be waiting; a second completes the sync: what both were answered."""
    waiting = join_in_background(server.address, *first)
    settle()
    assert waiting["thread"].is_alive(), "one task of two must wait"
    completing = join_in_background(server.address, *then)
    for outcome in (waiting, completing):
        outcome["thread"].join(10)
    return [waiting["messages"], completing["messages"]]


def test_a_sync_waits_for_every_task_and_answers_in_partition_order(server: RendezvousServer) -> None:
    answers = waiting_then_completed(server, (1, "from 1"), (0, "from 0"))
    assert answers == [["from 0", "from 1"]] * 2
    assert server.syncs_served == 1


def test_a_task_whose_connection_closed_is_dropped_and_its_retry_completes_the_sync(server: RendezvousServer) -> None:
    gone = raw_join(server, 0, "killed task", attempt=1)
    settle()
    gone.close()  # the killed task must not count: the next one waits
    answers = waiting_then_completed(server, (1, "b"), (0, "a, second attempt"))
    assert answers == [["a, second attempt", "b"]] * 2


def test_a_new_attempt_of_a_partition_takes_the_place_of_the_old_one(server: RendezvousServer) -> None:
    old = raw_join(server, 0, "old attempt", attempt=1)
    settle()
    new = join_in_background(server.address, 0, "new attempt", attempt=2)
    settle()
    assert old.recv(1) == b"", "the replaced attempt is hung up on"
    other = join_in_background(server.address, 1, "b")
    for outcome in (new, other):
        outcome["thread"].join(10)
        assert outcome["messages"] == ["new attempt", "b"]
    old.close()


def test_a_wrong_token_is_refused_and_closing_fails_waiting_tasks_clearly(server: RendezvousServer) -> None:
    intruder = raw_join(server, 0, "x", attempt=1, token="not-the-token")
    assert intruder.recv(1) == b""
    intruder.close()
    waiting = join_in_background(server.address, 1, "b")
    settle()
    server.close()
    waiting["thread"].join(10)
    assert "hung up before sync 0 of stage 7" in waiting["error"]
    assert server.syncs_served == 0


def test_a_line_that_is_not_a_sync_request_is_refused(server: RendezvousServer) -> None:
    host, port, _ = server.address.rsplit(":", 2)
    for line in (b"not json\n", b"[1, 2]\n", b'{"token": "x"}\n'):
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(line)
            assert conn.recv(1) == b"", line
    assert server.syncs_served == 0
