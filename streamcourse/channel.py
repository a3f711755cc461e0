"""The narrow channel between the trusted checker and the sandboxed runner.

When grading, a learner's notebook runs in a *runner* (``streamcourse.runner``,
inside bubblewrap) and the checks run in a *checker* that decides pass or fail.
They talk over one Unix stream socket, in frames (a 4-byte length, then a JSON
object) that this module writes, reads and checks. What crosses is data:

* **Plain values** with their exact types: ``None``, ``bool``, ``int``, finite or
  not ``float``, ``str``, ``bytes``, ``pathlib.Path``, and ``list``/``tuple``/``dict``
  of them. Only the exact built-in types count as plain: a ``str`` subclass or an
  object whose ``__eq__`` always says yes crosses as a *handle*, and a handle is
  only ever equal to itself — so such tricks earn nothing.
* **Handles** (``{"~r": id}``) to objects that stay where they are: a learner's
  function, generator or app on the runner's side; an iterator, async iterator or
  plain callable the check passed in on the checker's side. The other side drives
  a handle one operation at a time (call, next, anext, close, ...), so laziness,
  closing and timing stay observable.
* **Recipes** for the few objects that are rebuilt on the other side instead:
  an ``openai.AsyncOpenAI`` client becomes its ``base_url``, ``api_key``,
  ``max_retries`` and ``timeout``.

Every frame is size-limited and every value depth-limited; anything that does
not fit the schema ends the conversation (:class:`ProtocolError`). The policy of
what each side may ask of the other lives in :mod:`streamcourse.peer`.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

__all__ = [
    "MAX_FRAME",
    "ProtocolError",
    "Handle",
    "Recipe",
    "ErrorInfo",
    "Frames",
    "encode",
    "decode",
    "is_plain",
]

MAX_FRAME = 16 * 1024 * 1024  # bytes in one frame: a big chunk of a stream fits, a flood does not
MAX_DEPTH = 48  # nesting of one value: deeper is an attack on the reader, not data
_HEADER = struct.Struct("!I")


class ProtocolError(Exception):
    """The other side sent something that is not part of the protocol."""


@dataclass(frozen=True)
class Handle:
    """An object that lives on one side, named by the side that owns it.

    ``kind`` and ``abilities`` say what may be asked of it (``call``, ``next``,
    ``anext``, ``await``, ``close``, ``aclose``, ``send``, ``throw``, ``asend``,
    ``athrow``, ``iter``, ``aiter``, ``asgi``); ``label`` is a short description
    for messages (its type name, never a learner-written ``repr``).
    """

    id: int
    mine: bool  # True: an object of the side that decodes it (it was handed back)
    abilities: frozenset[str] = frozenset()
    label: str = "object"


@dataclass(frozen=True)
class Recipe:
    """An object rebuilt on the other side from plain settings."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class ErrorInfo:
    """An exception raised on the other side, as data."""

    type: str  # the exception's class name, e.g. "ValueError"
    builtin: str  # the nearest built-in exception class in its MRO, e.g. "ValueError"
    message: str
    where: str = ""  # e.g. "line 3 of <cell 5>": the innermost learner frame

    def describe(self) -> str:
        text = f"{self.type}: {self.message}" if self.message else self.type
        return text + (f" (at {self.where})" if self.where else "")


# --------------------------------------------------------------------------- values

_PLAIN_SCALARS = (type(None), bool, int, str)


def is_plain(value: Any, depth: int = 0) -> bool:
    """True when ``value`` crosses by value: exact built-in types all the way down."""
    kind = type(value)
    if (
        kind in _PLAIN_SCALARS
        or kind in (float, bytes, PurePosixPath)
        or kind.__name__ == "PosixPath"
        and kind.__module__ == "pathlib"
    ):
        return True
    if depth >= MAX_DEPTH:
        return False
    if kind in (list, tuple):
        return all(is_plain(item, depth + 1) for item in value)
    if kind is dict:
        return all(is_plain(k, depth + 1) and is_plain(v, depth + 1) for k, v in value.items())
    return False


def encode(value: Any, export: Callable[[Any], Any], depth: int = 0) -> Any:
    """``value`` as JSON-ready data; what is not plain goes through ``export`` (a handle or a recipe)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"a value nested deeper than {MAX_DEPTH} levels cannot be sent")
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"~f": repr(value)}
    if kind is bytes:
        return {"~b": base64.b64encode(value).decode("ascii")}
    if kind.__module__ == "pathlib" and kind.__name__ in ("PosixPath", "PurePosixPath"):
        return {"~p": str(value)}
    if kind is list:
        return [encode(item, export, depth + 1) for item in value]
    if kind is tuple:
        return {"~t": [encode(item, export, depth + 1) for item in value]}
    if kind is dict:
        return {"~d": [[encode(k, export, depth + 1), encode(v, export, depth + 1)] for k, v in value.items()]}
    made = export(value)
    if isinstance(made, Handle):
        return {"~r": made.id, "~m": made.mine, "~a": sorted(made.abilities), "~n": made.label[:80]}
    if isinstance(made, Recipe):
        return {"~o": made.kind, "~s": encode(made.settings, export, depth + 1)}
    raise TypeError(f"export() must give a Handle or a Recipe, not {type(made).__name__}")


def decode(data: Any, resolve: Callable[[Handle], Any], depth: int = 0) -> Any:
    """The value ``data`` stands for; handles and recipes go through ``resolve``. Raises ProtocolError."""
    if depth > MAX_DEPTH:
        raise ProtocolError("a value is nested too deeply")
    if data is None or type(data) in (bool, int, str):
        return data
    if type(data) is float:
        return data
    if type(data) is list:
        return [decode(item, resolve, depth + 1) for item in data]
    if type(data) is not dict or len(data) not in (1, 2, 4):
        raise ProtocolError(f"not a value of the protocol: {type(data).__name__}")
    try:
        return _decode_tagged(data, resolve, depth)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProtocolError(f"a malformed value: {type(exc).__name__}: {exc}") from None


def _decode_tagged(data: dict[str, Any], resolve: Callable[[Handle], Any], depth: int) -> Any:
    if "~f" in data:
        text = data["~f"]
        if text not in ("nan", "inf", "-inf"):
            raise ValueError(f"unknown float {text!r}")
        return float(text)
    if "~b" in data:
        return base64.b64decode(data["~b"].encode("ascii"), validate=True)
    if "~p" in data:
        from pathlib import Path

        return Path(_text(data["~p"]))
    if "~t" in data:
        return tuple(decode(_items(data["~t"]), resolve, depth + 1))
    if "~d" in data:
        pairs = [_items(pair) for pair in _items(data["~d"])]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("a dict entry is not a key and a value")
        return {decode(k, resolve, depth + 1): decode(v, resolve, depth + 1) for k, v in pairs}
    if "~r" in data:
        ident, mine, abilities, label = data["~r"], data["~m"], _items(data["~a"]), _text(data["~n"])
        if type(ident) is not int or type(mine) is not bool or not all(type(a) is str for a in abilities):
            raise ValueError("a malformed handle")
        return resolve(Handle(ident, mine, frozenset(abilities), label[:80]))
    if "~o" in data:
        return resolve(Recipe(_text(data["~o"]), decode(data["~s"], resolve, depth + 1)))  # type: ignore[arg-type]
    raise ValueError(f"unknown tag {sorted(data)}")


def _items(value: Any) -> list[Any]:
    if type(value) is not list:
        raise ValueError("expected a list")
    return value


def _text(value: Any) -> str:
    if type(value) is not str:
        raise ValueError("expected a string")
    return value


# --------------------------------------------------------------------------- frames on a socket


class Frames:
    """Length-prefixed JSON objects over a stream socket; thread-safe to send, one reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()
        self._buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        if len(data) > MAX_FRAME:
            raise ValueError(f"a message of {len(data)} bytes is over the channel's limit of {MAX_FRAME}")
        with self._send_lock:
            self.sock.sendall(_HEADER.pack(len(data)) + data)

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the other side closed the channel."""
        header = self._read(_HEADER.size)
        if header is None:
            return None
        (size,) = _HEADER.unpack(header)
        if size > MAX_FRAME:
            raise ProtocolError(f"a frame of {size} bytes is over the limit of {MAX_FRAME}")
        body = self._read(size)
        if body is None:
            raise ProtocolError("the channel closed in the middle of a frame")
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"a frame is not JSON: {type(exc).__name__}") from None
        if type(message) is not dict:
            raise ProtocolError("a frame is not a JSON object")
        return message

    def _read(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            chunk = self.sock.recv(max(65536, size - len(self._buffer)))
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the other side: nothing left to flush
        self.sock.close()
