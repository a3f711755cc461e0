"""The other side's objects and exceptions, here: proxies to drive them, exceptions rebuilt from data.

A :class:`Proxy` stands for an object the other side lent (a learner's
generator, seen from the checker; a check's iterator, seen from the runner):
every operation on it is a request through its :class:`~streamcourse.peer.Peer`,
and it is equal only to itself. An exception from the other side arrives as an
:class:`~streamcourse.channel.ErrorInfo` and is rebuilt as a subclass of the
built-in class it named, marked :class:`LearnerError`.
"""

from __future__ import annotations

import builtins
import traceback
from typing import TYPE_CHECKING, Any

from streamcourse.channel import ErrorInfo, Handle, ProtocolError

if TYPE_CHECKING:
    from streamcourse.peer import Peer

__all__ = ["Proxy", "Stop", "LearnerError", "ASYNC_OPS", "describe_error", "rebuild_error", "error_info"]

#: Operations that run on an event loop; the rest run in a thread.
ASYNC_OPS = frozenset({"anext", "asend", "athrow", "aclose", "await"})
_LOCAL_NAMES = frozenset({"close", "aclose", "send", "asend", "throw", "athrow"})


class LearnerError(Exception):
    """Mixed into exceptions rebuilt from the other side, so a checker can tell them from its own."""

    info: ErrorInfo


class Stop(Exception):
    """A StopIteration/StopAsyncIteration that crossed, with the value it carried."""

    def __init__(self, value: Any, is_async: bool) -> None:
        self.value, self.is_async = value, is_async


# --------------------------------------------------------------------------- errors as data


def describe_error(exc: BaseException) -> ErrorInfo:
    """An exception as data: its class, nearest built-in class, message and the innermost learner line."""
    builtin = next((k.__name__ for k in type(exc).__mro__ if getattr(builtins, k.__name__, None) is k), "Exception")
    try:
        message = str(exc)[:2000]
    except Exception:  # noqa: BLE001 - a hostile __str__: the class name is enough
        message = ""
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith("<cell"):
            where = f"line {frame.lineno} of {frame.filename}"
    if isinstance(exc, LearnerError):  # it came from the other side first: keep where it started
        return exc.info
    return ErrorInfo(type(exc).__name__[:80], builtin, message, where)


def error_info(data: Any) -> ErrorInfo:
    if type(data) is not dict or not all(type(data.get(k, "")) is str for k in ("type", "builtin", "message", "where")):
        raise ProtocolError("a malformed error")
    return ErrorInfo(data["type"][:80], data["builtin"][:80], data["message"][:2000], data.get("where", "")[:200])


_REBUILT: dict[tuple[str, str], type[BaseException]] = {}


def rebuild_error(info: ErrorInfo) -> BaseException:
    """An exception of (a subclass of) the built-in class named in ``info``, marked as a LearnerError.

    Only subclasses of ``Exception`` are rebuilt as themselves: a ``SystemExit`` or
    ``KeyboardInterrupt`` from the other side must never stop this process.
    """
    base = getattr(builtins, info.builtin, None)
    if not (isinstance(base, type) and issubclass(base, Exception)) or issubclass(
        base, (StopIteration, StopAsyncIteration)
    ):
        base = RuntimeError
    key = (info.type, base.__name__)
    cls = _REBUILT.get(key)
    if cls is None:
        try:
            cls = type(info.type, (base, LearnerError), {"__module__": "builtins"})  # shown as plain `ValueError: ...`
        except TypeError:  # a built-in whose layout cannot be mixed: keep the name, lose the base
            cls = type(info.type, (LearnerError,), {"__module__": "builtins"})
        _REBUILT[key] = cls
    message = info.message + (f" (at {info.where})" if info.where else "")
    try:
        exc = cls(message)
    except TypeError:  # e.g. UnicodeDecodeError needs five arguments
        exc = type(info.type, (LearnerError,), {"__module__": "builtins"})(message)
    exc.info = info  # type: ignore[attr-defined]
    return exc


# --------------------------------------------------------------------------- the other side's objects, here


class Proxy:
    """An object of the other side. Operations on it are requests; it equals only itself."""

    __slots__ = ("_peer", "_handle", "__weakref__")

    def __init__(self, peer: Peer, handle: Handle) -> None:
        object.__setattr__(self, "_peer", peer)
        object.__setattr__(self, "_handle", handle)

    def __repr__(self) -> str:
        return f"<{self._handle.label}>"

    def __streamcourse_serve__(self, name: str) -> Any:
        return self._peer.policy.serve(self, name)

    def __streamcourse_serve_workers__(self, workers: int, name: str) -> Any:
        return self._peer.policy.serve_workers(self, workers, name)

    def _can(self, op: str) -> None:
        if op not in self._handle.abilities:
            raise TypeError(f"{self._handle.label!r} object does not support {op}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name in _LOCAL_NAMES:
            if name not in self._handle.abilities:
                raise AttributeError(f"{self._handle.label!r} object has no attribute {name!r}")
            return _Method(self, name)
        return self._peer.call("getattr", self._handle, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("objects of the other side are read-only here")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._can("call")
        return self._peer.call("call", self._handle, *args, **kwargs)

    def __iter__(self) -> Any:
        if "next" in self._handle.abilities:
            return self
        self._can("iter")
        return self._peer.call("iter", self._handle)

    def __next__(self) -> Any:
        self._can("next")
        try:
            return self._peer.call("next", self._handle)
        except Stop as stop:
            raise StopIteration(stop.value) from None

    def __aiter__(self) -> Any:
        if "anext" in self._handle.abilities:
            return self
        self._can("aiter")
        return self._peer.call("aiter", self._handle)

    async def __anext__(self) -> Any:
        self._can("anext")
        try:
            return await self._peer.acall("anext", self._handle)
        except Stop:
            raise StopAsyncIteration from None

    def __await__(self) -> Any:
        self._can("await")
        return self._awaited().__await__()

    async def _awaited(self) -> Any:
        try:
            return await self._peer.acall("await", self._handle)
        except Stop as stop:
            return stop.value

    def __bool__(self) -> bool:
        return self._peer.call("bool", self._handle) is True

    def __len__(self) -> int:
        value = self._peer.call("len", self._handle)
        if type(value) is not int:
            raise TypeError("len() of the other side's object is not an int")
        return value

    def __contains__(self, item: Any) -> bool:
        return self._peer.call("contains", self._handle, item) is True

    def __getitem__(self, key: Any) -> Any:
        return self._peer.call("getitem", self._handle, key)


class _Method:
    """``proxy.close`` and friends: bound operations that exist only when the object has them."""

    def __init__(self, proxy: Proxy, op: str) -> None:
        self.proxy, self.op = proxy, op

    def __call__(self, *args: Any) -> Any:
        peer, handle = self.proxy._peer, self.proxy._handle
        if self.op in ASYNC_OPS:
            return _Awaiting(peer, self.op, handle, args)
        try:
            return peer.call(self.op, handle, *args)
        except Stop as stop:
            raise StopIteration(stop.value) from None


class _Awaiting:
    """What ``proxy.aclose()`` returns: something to await, as a coroutine would be."""

    def __init__(self, peer: Peer, op: str, handle: Handle, args: tuple[Any, ...]) -> None:
        self.peer, self.op, self.handle, self.args = peer, op, handle, args

    def __await__(self) -> Any:
        return self._run().__await__()

    async def _run(self) -> Any:
        try:
            return await self.peer.acall(self.op, self.handle, *self.args)
        except Stop:
            raise StopAsyncIteration from None
