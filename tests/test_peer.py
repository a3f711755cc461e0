"""Two peers over a real socket pair: the learner's side as the runner has it, the checker's side as grading has it.

These pin what a check may rely on when the learner's code is on the other
side of the channel: values come back with exact types, generators are driven
one item at a time both ways, cancelling an await cancels it over there, errors
come back as what they were, and the checker's side lends nothing but what a
check passed in.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from streamcourse.channel import Frames
from streamcourse.peer import Closed, Peer
from streamcourse.proxy import LearnerError, Proxy
from streamcourse.remote import CheckSide
from streamcourse.runner import LearnerLoop, LearnerSide

LEARNER_CODE = """
import asyncio

log = []

def double(x):
    return [x, x]

def count_to(n):
    for i in range(n):
        log.append(i)
        yield i

def pull(rows):
    return [next(rows), next(rows)]

async def ticks(gate):
    try:
        yield "first"
        await asyncio.sleep(30)
        yield "never"
    finally:
        log.append("closed")

def fails():
    raise ValueError("bad value")

def exits():
    raise SystemExit(3)

class Sneaky(str):
    def __eq__(self, other):
        return True

def sneaky():
    return Sneaky("x")

def peek(thing):
    return thing.gi_frame

kept = []
def keep(items):
    kept.append(items)

async def drain_kept():
    return [x async for x in kept[0]]
"""


@pytest.fixture
def sides() -> Iterator[tuple[Peer, dict[str, Any]]]:
    """The checker's peer, and the learner's namespace on the other end."""
    values: dict[str, Any] = {}
    exec(compile(LEARNER_CODE, "<cell 1>", "exec"), values)
    mine, theirs = socket.socketpair()
    learner = Peer(Frames(theirs), LearnerSide(values, LearnerLoop())).start()
    checker = Peer(Frames(mine), CheckSide()).start()
    yield checker, values
    checker.close()
    learner.close()


def name(checker: Peer, what: str) -> Any:
    return checker.call("name", None, what, timeout=10)


def test_a_call_returns_plain_data_with_exact_types(sides) -> None:
    checker, _ = sides
    assert name(checker, "double")((1, "a")) == [(1, "a"), (1, "a")]


def test_a_str_subclass_comes_back_as_a_handle_equal_only_to_itself(sides) -> None:
    checker, _ = sides
    result = name(checker, "sneaky")()
    assert isinstance(result, Proxy) and result != "x" and result == result


def test_a_returned_generator_runs_only_as_far_as_it_is_driven(sides) -> None:
    checker, values = sides
    gen = name(checker, "count_to")(100)
    assert [next(gen), next(gen)] == [0, 1] and values["log"] == [0, 1]
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)


def test_an_iterator_the_check_passes_is_pulled_one_item_at_a_time(sides) -> None:
    checker, _ = sides
    pulled: list[int] = []

    def rows() -> Iterator[int]:
        for i in range(1000):
            pulled.append(i)
            yield i

    assert name(checker, "pull")(rows()) == [0, 1] and pulled == [0, 1]


async def test_cancelling_an_await_cancels_it_on_the_other_side(sides) -> None:
    checker, values = sides
    ticks = name(checker, "ticks")(None)
    assert await ticks.__anext__() == "first"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ticks.__anext__(), 0.2)
    for _ in range(200):
        if "closed" in values["log"]:
            break
        await asyncio.sleep(0.01)
    assert "closed" in values["log"], "the learner's generator was cancelled at its await and ran its finally"


def test_an_async_iterator_lent_by_a_check_that_has_ended_fails_at_once_instead_of_hanging(sides) -> None:
    """A learner's server went on reading a source whose check was over: the next check waited 20 s for it."""
    checker, _ = sides

    async def items() -> Any:
        yield 1

    async def lend() -> None:
        name(checker, "keep")(items())

    asyncio.run(lend())  # the check that lent it ends here, and its loop with it

    async def drain() -> Any:
        return await asyncio.wait_for(name(checker, "drain_kept")(), 10)

    with pytest.raises(RuntimeError, match="the loop that lent it has ended"):
        asyncio.run(drain())


def test_an_error_comes_back_as_the_built_in_it_was_with_where_it_happened(sides) -> None:
    checker, _ = sides
    with pytest.raises(ValueError, match="bad value") as raised:
        name(checker, "fails")()
    assert isinstance(raised.value, LearnerError) and "line 26 of <cell 1>" in str(raised.value)


def test_an_exit_on_the_other_side_never_stops_this_one(sides) -> None:
    checker, _ = sides
    with pytest.raises(Exception) as raised:
        name(checker, "exits")()
    assert isinstance(raised.value, LearnerError) and not isinstance(raised.value, SystemExit)


def test_the_learners_code_cannot_read_attributes_of_what_a_check_lent(sides) -> None:
    checker, _ = sides

    def rows() -> Iterator[int]:
        secret = "expected value"  # noqa: F841 - what a frame walk would be after
        yield 1

    with pytest.raises(PermissionError, match="does not getattr"):
        name(checker, "peek")(rows())


def test_a_check_cannot_pass_an_object_the_channel_cannot_drive(sides) -> None:
    checker, _ = sides
    with pytest.raises(TypeError, match="plain data, iterators and callables"):
        name(checker, "double")(threading.Event())


def test_a_call_in_flight_fails_when_the_other_side_goes(sides) -> None:
    checker, values = sides
    values["wait"] = threading.Event().wait
    box: dict[str, BaseException] = {}

    def call() -> None:
        try:
            name(checker, "wait")()
        except BaseException as exc:  # noqa: BLE001 - kept for the assertion
            box["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    checker.frames.sock.shutdown(socket.SHUT_RDWR)
    caller.join(10)
    assert isinstance(box.get("error"), Closed)
