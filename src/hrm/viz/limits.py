"""The viewer's limits on connections, time and work (`hrm viz`), and the two pieces that enforce them
below the app: a uvicorn HTTP protocol with a request-head deadline and a connection cap, and a
runner for blocking work in daemon threads with a deadline and a bound on how many run at once.

A connection must send its request line and headers within `head_timeout_s` of opening (or of the
previous response): one that sends them a byte at a time is answered 408 and closed, one that sends
nothing is closed. The body must follow within `body_timeout_s` (the app reads it under that
deadline). A kept-alive connection idle for `idle_timeout_s` is closed (uvicorn's
`timeout_keep_alive`). Headers over `max_header_bytes` are refused (h11's limit while they arrive,
the app's once they have), and beyond `max_connections` open connections a new one is answered 503
and closed at once.

Work that can take long (solving, generating) runs in a daemon thread, at most `work_slots` at a
time (a request beyond them is answered 503 "busy" at once instead of queueing), and is waited for
until `work_deadline_s` (then 504) or until the client disconnects. Python cannot stop a thread, so
work that overruns keeps its slot until it ends: the slots bound the threads really running. Reads
(info, the run's metrics, the dataset) do the same in their own `read_slots` under
`read_deadline_s`, so that they keep answering while every work slot is taken. Threads are daemons:
on SIGTERM the requests waiting for work are answered 503 at once, uvicorn waits at most
`shutdown_grace_s` for the rest, and the process exits without waiting for the threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from starlette.types import Receive

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    head_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    idle_timeout_s: int = 5
    max_header_bytes: int = 16 * 1024
    max_connections: int = 100
    work_deadline_s: float = 60.0
    work_slots: int = 2
    read_deadline_s: float = 10.0
    read_slots: int = 8
    shutdown_grace_s: int = 1

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"Limits.{name} must be positive, got {value}")

    def summary(self) -> dict[str, Any]:
        return asdict(self)


class WorkError(Exception):
    """Work refused or given up: `status` and `message` are the answer to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Job:
    """What a piece of work can ask while it runs: whether anyone still waits for it."""

    def __init__(self, deadline_s: float):
        self.deadline = time.monotonic() + deadline_s
        self.abandoned = threading.Event()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise when the client left or the deadline passed: nobody will read the result."""
        if self.abandoned.is_set() or time.monotonic() >= self.deadline:
            raise WorkError(504, "the request was abandoned (deadline passed or client gone)")


class WorkPool:
    """Runs blocking functions in daemon threads, at most `slots` at once, each waited for at most
    `deadline_s` seconds and no longer than its client stays connected."""

    def __init__(self, what: str, slots: int, deadline_s: float, hint: str = ""):
        self.what = what
        self.slots = slots
        self.deadline_s = deadline_s
        self.hint = hint
        self._running = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._stops: set[asyncio.Future[None]] = set()

    @property
    def running(self) -> int:
        return self._running

    def _take(self) -> bool:
        with self._lock:
            if self._running >= self.slots:
                return False
            self._running += 1
            return True

    def _give(self) -> None:
        with self._lock:
            self._running -= 1

    def stop(self) -> None:
        """The server is shutting down: waiters answer 503 now (call in the event loop's thread)."""
        self._stopping = True
        for stop in self._stops:
            if not stop.done():
                stop.set_result(None)

    async def run(self, receive: Receive | None, fn: Callable[[Job], T]) -> T:
        """`fn(job)` in a thread. Raises WorkError(503) at once when every slot is taken or the server
        is stopping, WorkError(504) when the deadline passes, ClientGone when `receive` reports the
        client disconnected; the thread is then left to finish (it holds its slot until it does)
        and `job.abandoned` is set."""
        if self._stopping:
            raise WorkError(503, "the server is shutting down")
        if not self._take():
            raise WorkError(
                503,
                f"busy: {self.slots} {self.what} are running, the most at once; try again when one has "
                "finished",
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = Job(self.deadline_s)

        def deliver(ok: bool, value: Any) -> None:
            if future.done():  # the waiter left
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def target() -> None:
            ok, value = False, None
            try:
                result: Any = fn(job)
                ok, value = True, result
            except Exception as exc:
                value = exc
            finally:
                self._give()
            with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody is waiting
                loop.call_soon_threadsafe(deliver, ok, value)

        threading.Thread(target=target, name=f"hrm viz {self.what}", daemon=True).start()
        gone = asyncio.ensure_future(_disconnected(receive)) if receive is not None else None
        stop: asyncio.Future[None] = loop.create_future()
        self._stops.add(stop)
        try:
            waiting: set[asyncio.Future[Any]] = {future, stop} if gone is None else {future, stop, gone}
            await asyncio.wait(waiting, timeout=job.remaining(), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stops.discard(stop)
            if gone is not None:
                gone.cancel()
            if not future.done():
                future.cancel()
                job.abandoned.set()
        if not future.cancelled():
            return future.result()
        if stop.done():
            raise WorkError(503, "the server is shutting down")
        if gone is not None and gone.done() and not gone.cancelled():
            raise ClientGone()
        raise WorkError(504, f"gave up after {self.deadline_s:g} s: that took too long{self.hint}")


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def _disconnected(receive: Receive) -> None:
    """Returns when the ASGI server reports the client gone. Call only once the request body has
    been read (or is not wanted): body messages are taken and dropped."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False):
            await asyncio.sleep(0.05)  # a server that answers at once again must not spin the loop


# --------------------------------------------------------------------------------------------------
# The HTTP protocol
# --------------------------------------------------------------------------------------------------


def raw_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response closing the connection: the JSON `{"error": message}`."""
    body = json.dumps({"error": message}).encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def protocol_class(limits: Limits, on_shutdown: Callable[[], None] | None = None) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline for each request head, a cap on open connections and
    JSON bodies on the errors it answers itself. `on_shutdown` is called when the server begins to
    shut down (to end the app's waits, so that no request needs cancelling)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.write(
                    raw_response(
                        503,
                        "Service Unavailable",
                        f"busy: over {limits.max_connections} open connections; try again in a moment",
                    )
                )
                transport.close()
                return
            self._arm_head_timer()

        def shutdown(self) -> None:
            if on_shutdown is not None:
                on_shutdown()
            super().shutdown()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_timer()

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_timed_out, self.cycle)

        def _head_timed_out(self, armed_with: Any) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            # Still waiting for a head: no request began since the timer was armed (a pipelined one
            # that began during on_response_complete is `armed_with` itself, and still running).
            if self.cycle is not armed_with or (armed_with is not None and not armed_with.response_complete):
                return
            if self.conn.our_state is h11.IDLE and self.conn.trailing_data[0]:  # part of a head came
                seconds = f"{limits.head_timeout_s:g}"
                self.transport.write(
                    raw_response(408, "Request Timeout", f"the request headers took over {seconds} s")
                )
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            message = f"invalid HTTP request (malformed, or headers over {limits.max_header_bytes} bytes)"
            body = json.dumps({"error": message}).encode("utf-8")
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ]
            try:
                for event in (
                    h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                    h11.Data(data=body),
                    h11.EndOfMessage(),
                ):
                    self.transport.write(self.conn.send(event) or b"")
            except h11.LocalProtocolError:  # a response had already begun
                pass
            self.transport.close()

    return GuardedH11Protocol
