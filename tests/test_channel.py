"""The grader's channel: exact-type values, handles for the rest, and nothing else accepted."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest

from streamcourse.channel import MAX_FRAME, Frames, Handle, ProtocolError, Recipe, decode, encode, is_plain


def lend_nothing(value: object) -> Handle:
    return Handle(7, mine=False, abilities=frozenset({"call"}), label=type(value).__name__)


def keep(ref: Handle | Recipe) -> Handle | Recipe:
    return ref


def round_trip(value: object) -> object:
    return decode(json.loads(json.dumps(encode(value, lend_nothing))), keep)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        10**40,
        1.5,
        "",
        "café ☕\n",
        b"",
        b"\x00\xff",
        Path("/tmp/x.bin"),
        [],
        [1, "two", b"3"],
        (1, (2, 3)),
        {1: "int key", "k": [None], (1, 2): b"tuple key"},
        {"nested": {"deep": [[{}]]}},
    ],
    ids=repr,
)
def test_plain_values_cross_with_their_exact_types(value: object) -> None:
    back = round_trip(value)
    assert back == value and type(back) is type(value)


def test_special_floats_cross() -> None:
    back = round_trip([float("inf"), float("-inf")])
    assert back == [float("inf"), float("-inf")]
    nan = round_trip(float("nan"))
    assert isinstance(nan, float) and nan != nan


def test_a_str_subclass_is_not_plain_and_crosses_as_a_handle() -> None:
    class Sneaky(str):
        def __eq__(self, other: object) -> bool:
            return True

    assert not is_plain(Sneaky("x"))
    back = round_trip(Sneaky("x"))
    assert isinstance(back, Handle) and back.label == "Sneaky"


def test_an_always_equal_object_crosses_as_a_handle_equal_only_to_itself() -> None:
    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

    back = round_trip([Anything()])
    assert isinstance(back[0], Handle) and back[0] != "whatever the check expected"


def test_a_value_nested_too_deep_is_refused_both_ways() -> None:
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        encode(deep, lend_nothing)
    with pytest.raises(ProtocolError, match="too deeply"):
        decode(json.loads("[" * 200 + "]" * 200), keep)


@pytest.mark.parametrize(
    "data",
    [
        {"~x": 1},
        {"~b": "not base64!"},
        {"~f": "1e999"},
        {"~d": [[1]]},
        {"~r": "1", "~m": True, "~a": [], "~n": "x"},
        {"~r": 1, "~m": "yes", "~a": [], "~n": "x"},
        {"plain": "dicts are not values"},
        {"~t": "not a list"},
    ],
    ids=str,
)
def test_malformed_values_are_protocol_errors(data: object) -> None:
    with pytest.raises(ProtocolError):
        decode(data, keep)


def frames_pair() -> tuple[Frames, socket.socket]:
    mine, theirs = socket.socketpair()
    return Frames(mine), theirs


def test_frames_carry_json_objects() -> None:
    frames, theirs = frames_pair()
    Frames(theirs).send({"q": 1, "op": "call"})
    assert frames.receive() == {"q": 1, "op": "call"}
    theirs.close()
    assert frames.receive() is None


def test_a_frame_over_the_size_limit_is_refused_before_it_is_read() -> None:
    frames, theirs = frames_pair()
    theirs.sendall(struct.pack("!I", MAX_FRAME + 1))
    with pytest.raises(ProtocolError, match="over the limit"):
        frames.receive()


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b"\xff\xfe", b"{" * 10000 + b"}" * 10000], ids=["text", "array", "bytes", "deep"]
)
def test_a_frame_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    frames, theirs = frames_pair()
    theirs.sendall(struct.pack("!I", len(body)) + body)
    with pytest.raises(ProtocolError):
        frames.receive()


def test_a_message_too_big_to_send_is_refused_here() -> None:
    frames, _ = frames_pair()
    with pytest.raises(ValueError, match="over the channel's limit"):
        frames.send({"v": "x" * (MAX_FRAME + 10)})
