"""One side of a conversation over the channel: it calls the other side, answers it, and lends objects.

Both the checker and the runner hold a :class:`Peer`. A peer lends its own
objects as handles (:meth:`Peer.lend`), turns the other side's handles into
:class:`Proxy` objects, and runs what the other side asks of a lent object
through its :class:`Policy` — the runner's policy does anything a check may ask
of the learner's code; the checker's policy only drives the iterators and calls
the callables a check passed in, and never reads an attribute (that is how a
learner would walk into the checker's frames and secrets).

Sync operations run in a small thread pool; async ones (``anext``, ``aclose``,
``await``, ...) on the event loop that owns the object, and a caller that gives
up cancels them on the other side too, as a local ``await`` would.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import weakref
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from streamcourse.channel import ErrorInfo, Frames, Handle, ProtocolError, Recipe, decode, encode
from streamcourse.proxy import ASYNC_OPS, Proxy, Stop, describe_error, error_info, rebuild_error

if TYPE_CHECKING:  # asyncio is imported where an async operation needs it: a runner that never awaits saves 60 ms
    import asyncio

__all__ = ["Peer", "Policy", "Closed", "abilities_of"]


class Closed(ConnectionError):
    """The channel is gone: the other side stopped (or was stopped)."""


def abilities_of(obj: Any) -> frozenset[str]:
    """What may be asked of ``obj``, by what it is."""
    found = {
        op
        for op, attr in (
            ("close", "close"),
            ("send", "send"),
            ("throw", "throw"),
            ("aclose", "aclose"),
            ("asend", "asend"),
            ("athrow", "athrow"),
        )
        if hasattr(obj, attr)
    }
    if callable(obj):
        found.add("call")
    if hasattr(obj, "__next__"):
        found.add("next")
    elif hasattr(obj, "__iter__"):
        found.add("iter")
    if hasattr(obj, "__anext__"):
        found.add("anext")
    elif hasattr(obj, "__aiter__"):
        found.add("aiter")
    if hasattr(obj, "__await__"):
        found.add("await")
    return frozenset(found)


class Policy:
    """What a side does when the other side asks something of one of its objects."""

    def describe(self, obj: Any) -> Handle | Recipe | None:
        """How a local object that is not plain data crosses (None: lend it as a handle)."""
        return None

    def rebuild(self, recipe: Recipe) -> Any:
        raise ProtocolError(f"this side rebuilds no {recipe.kind!r} objects")

    def run(self, op: str, obj: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run a sync operation on a lent object (``obj`` is None for the side's own root operations)."""
        raise PermissionError(f"{op!r} is not allowed here")

    async def arun(self, op: str, obj: Any, args: list[Any]) -> Any:
        raise PermissionError(f"{op!r} is not allowed here")

    def loop_for(self, obj: Any) -> asyncio.AbstractEventLoop:
        raise PermissionError("this side runs no async operations")

    def serve(self, app: Proxy, name: str) -> Any:
        """Serve an app of the other side (see ``streamcourse.server.serve``)."""
        raise PermissionError("this side serves no apps of the other side")

    def serve_workers(self, app: Proxy, workers: int, name: str) -> Any:
        """Serve an app of the other side from worker processes (see ``streamcourse.workers.serve_workers``)."""
        raise PermissionError("this side serves no apps of the other side")


class Peer:
    """Calls, answers and lends over one channel socket."""

    def __init__(
        self, frames: Frames, policy: Policy, on_event: Callable[[str, Any], None] | None = None, workers: int = 32
    ) -> None:
        self.frames, self.policy, self.on_event = frames, policy, on_event
        self._ids = itertools.count(1)
        self._lent: dict[int, Any] = {}
        self._lent_ids: dict[int, int] = {}  # id(obj) -> handle id, so one object keeps one handle
        self._lent_loops: dict[int, asyncio.AbstractEventLoop] = {}
        self._pending: dict[int, concurrent.futures.Future[Any]] = {}
        self._running: dict[int, concurrent.futures.Future[Any]] = {}
        self._proxies: weakref.WeakValueDictionary[int, Proxy] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="streamcourse-peer")
        self.closed = threading.Event()
        self.why_closed = ""
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name="streamcourse-peer-reader")

    def start(self) -> Peer:
        self._reader.start()
        return self

    @property
    def busy(self) -> bool:
        """True while a call of ours is still waiting for its answer."""
        with self._lock:
            return bool(self._pending)

    # ---- lending our objects
    def lend(self, obj: Any) -> Handle | Recipe:
        described = self.policy.describe(obj)
        if described is not None:
            return described
        with self._lock:
            known = self._lent_ids.get(id(obj))
            if known is None:
                known = next(self._ids)
                self._lent[known], self._lent_ids[id(obj)] = obj, known
                if hasattr(obj, "__anext__") or hasattr(obj, "__await__"):
                    self._lent_loops[known] = self.policy.loop_for(obj)
        return Handle(known, mine=False, abilities=abilities_of(obj), label=type(obj).__name__)

    def forget(self) -> None:
        """Drop every object lent so far (between checks), and ask the other side to do the same."""
        self._drop_lent()
        if not self.closed.is_set():
            self._send({"forget": True})

    def _drop_lent(self) -> None:
        with self._lock:
            self._lent.clear()
            self._lent_ids.clear()
            self._lent_loops.clear()

    def _resolve(self, ref: Handle | Recipe) -> Any:
        if isinstance(ref, Recipe):
            return self.policy.rebuild(ref)
        if ref.mine:  # the other side handed one of our own objects back
            with self._lock:
                if ref.id not in self._lent:
                    raise ProtocolError(f"no lent object {ref.id}")
                return self._lent[ref.id]
        with self._lock:  # one proxy per object of the other side, so `is` and `==` mean what they say
            proxy = self._proxies.get(ref.id)
            if proxy is None:
                proxy = self._proxies[ref.id] = Proxy(self, ref)
        return proxy

    def _encode(self, value: Any) -> Any:
        return encode(value, self._export)

    def _export(self, value: Any) -> Handle | Recipe:
        if isinstance(value, Proxy) and value._peer is self:
            return Handle(value._handle.id, mine=True)
        return self.lend(value)

    # ---- asking the other side
    def _request(
        self, op: str, target: Handle | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[int, concurrent.futures.Future[Any]]:
        if self.closed.is_set():
            raise Closed(self.why_closed or "the channel is closed")
        ident = next(self._ids)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._pending[ident] = future
        message = {
            "q": ident,
            "op": op,
            "to": None if target is None else target.id,
            "a": [self._encode(a) for a in args],
            "k": [[k, self._encode(v)] for k, v in kwargs.items()],
        }
        try:
            self._send(message)
        except BaseException:
            with self._lock:
                self._pending.pop(ident, None)
            raise
        return ident, future

    def call(
        self, op: str, target: Handle | None = None, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Ask the other side to run ``op`` and wait for the answer (raises what it raised)."""
        ident, future = self._request(op, target, args, kwargs)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            self._cancel(ident)
            raise TimeoutError(f"no answer to {op!r} within {timeout:g} s") from None
        except BaseException:
            if not future.done():  # interrupted (a time limit): the other side may stop too
                self._cancel(ident)
            raise

    async def acall(self, op: str, target: Handle | None = None, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call` for a coroutine: cancelling the awaiting task cancels the operation over there."""
        import asyncio

        ident, future = self._request(op, target, args, kwargs)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self._cancel(ident)
            raise

    def notify(self, kind: str, data: Any = None) -> None:
        """A one-way event for the other side (the runner's progress: cells, readiness)."""
        self._send({"ev": kind, "d": self._encode(data)})

    def _cancel(self, ident: int) -> None:
        with self._lock:
            self._pending.pop(ident, None)
        if not self.closed.is_set():
            try:
                self._send({"c": ident})
            except OSError:
                pass  # the channel broke meanwhile: nothing left to cancel

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.frames.send(message)
        except OSError as exc:
            self._shut(f"the channel broke while sending ({exc})")
            raise Closed(self.why_closed) from None

    # ---- reading
    def _read_loop(self) -> None:
        why = "the other side closed the channel"
        try:
            while True:
                message = self.frames.receive()
                if message is None:
                    break
                self._dispatch(message)
        except ProtocolError as exc:
            why = f"protocol violation: {exc}"
        except OSError as exc:
            why = f"the channel broke ({exc})"
        self._shut(why)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "r" in message:
            self._answer(message)
        elif "q" in message:
            self._serve(message)
        elif "c" in message:
            with self._lock:
                running = self._running.get(message["c"])
            if running is not None:
                running.cancel()
        elif "ev" in message:
            if self.on_event is not None:
                self.on_event(str(message["ev"]), decode(message.get("d"), self._resolve))
        elif message.get("forget") is True:
            self._drop_lent()
        else:
            raise ProtocolError(f"unknown message with keys {sorted(message)[:5]}")

    def _answer(self, message: dict[str, Any]) -> None:
        ident = message["r"]
        with self._lock:
            future = self._pending.pop(ident, None) if type(ident) is int else None
        if future is None:
            return  # an answer to a call we gave up on
        try:
            if "v" in message:
                future.set_result(decode(message["v"], self._resolve))
            elif "stop" in message:
                future.set_exception(Stop(decode(message["stop"], self._resolve), bool(message.get("async"))))
            elif "e" in message:
                future.set_exception(rebuild_error(error_info(message["e"])))
            else:
                raise ProtocolError("an answer with neither value nor error")
        except ProtocolError as exc:
            future.set_exception(exc)
            raise

    def _serve(self, message: dict[str, Any]) -> None:
        ident, op, target = message["q"], message.get("op"), message.get("to")
        if type(ident) is not int or type(op) is not str or not (target is None or type(target) is int):
            raise ProtocolError("a malformed request")
        args = decode(message.get("a", []), self._resolve)
        kwargs = {str(k): decode(v, self._resolve) for k, v in message.get("k", [])}
        with self._lock:
            obj = self._lent.get(target) if target is not None else None
            loop = self._lent_loops.get(target) if target is not None else None
        if target is not None and obj is None:
            self._reply_error(ident, ErrorInfo("LookupError", "LookupError", "that object is no longer available"))
            return
        if op in ASYNC_OPS:
            if loop is None:
                self._reply_error(ident, ErrorInfo("TypeError", "TypeError", f"{op} needs an awaitable object"))
                return
            if loop.is_closed() or not loop.is_running():  # its check has ended: nobody would ever answer
                self._reply_error(ident, ErrorInfo("RuntimeError", "RuntimeError", "the loop that lent it has ended"))
                return
            import asyncio

            future = asyncio.run_coroutine_threadsafe(self.policy.arun(op, obj, args), loop)
        else:
            future = self._pool.submit(self.policy.run, op, obj, args, kwargs)
        with self._lock:
            self._running[ident] = future
        future.add_done_callback(lambda done: self._reply(ident, op, done))

    def _reply(self, ident: int, op: str, done: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._running.pop(ident, None)
        if self.closed.is_set():
            return
        try:
            if done.cancelled():
                import asyncio

                raise asyncio.CancelledError()
            value = done.result()
            self._send({"r": ident, "v": self._encode(value)})
        except (StopIteration, StopAsyncIteration) as stop:
            value = stop.value if isinstance(stop, StopIteration) else None
            self._send({"r": ident, "stop": self._encode(value), "async": isinstance(stop, StopAsyncIteration)})
        except Closed:
            pass
        except BaseException as exc:  # noqa: BLE001 - whatever the code raised is an answer for the other side
            self._reply_error(ident, describe_error(exc))

    def _reply_error(self, ident: int, info: ErrorInfo) -> None:
        try:
            self._send({"r": ident, "e": asdict(info)})
        except Closed:
            pass

    def _shut(self, why: str) -> None:
        if self.closed.is_set():
            return
        self.why_closed = why
        self.closed.set()
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
            running, self._running = list(self._running.values()), {}
        for future in pending:
            if not future.done():
                future.set_exception(Closed(why))
        for future in running:
            future.cancel()

    def close(self) -> None:
        self._shut("closed by this side")
        self.frames.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
