"""An OpenAI-compatible server that runs inside the notebook, so the course needs no key and no network.

Why it exists: lessons 06-10 stream from a language model, and the checks of
labs 06-10 must PROVE things a real model cannot show on demand: that a client which
gives up really stops the generation upstream, that a 429 arrives before the first
byte, that an error after the first byte travels inside the stream, that tool-call
arguments split anywhere are put back together. This server streams in the wire
format of the real API, so the unmodified openai SDK (and its streaming helpers)
talks to it, and it keeps a :class:`Generation` record of every request for the
checks to read.

Deliberate choices:

- Exact wire format, for Chat Completions (:mod:`.chat`) and the Responses API
  (:mod:`.responses`): text, tool calls (``tools``, ``tool_choice``,
  ``parallel_tool_calls``) and structured output (``response_format`` /
  ``text.format`` with a JSON schema). Timestamps are integer seconds.
- Deterministic replies (:mod:`.model` says how the model "decides"): the same
  request always gets the same reply, streamed or not.
- The producer is ASYNC and paced with ``asyncio.sleep``: when the client leaves,
  Starlette cancels the response task and the producer gets ``CancelledError`` at its
  ``await``. The record notes when the server saw the client leave and every piece
  produced, so "no tokens after disconnect" is measured, not assumed.
- Faults and pacing are chosen PER REQUEST from the SDK, with
  ``extra_body={"fault": "429" | "midstream" | "stall", "ttft": 0.0, "token_interval": 0.01}``
  or a model named ``fault-429`` etc., so one server serves every lesson and check.
  ``extra_body={"interleave": True}`` sends parallel tool calls' fragments in turn,
  which the wire format allows (the SDK's stream helper assumes one call after another).
- It does not import the course's pacing module: callers pass ``ttft=pace(0.5)``.
"""

from streamcourse.llm.app import MODEL, find, make_app, run
from streamcourse.llm.client import client, describe
from streamcourse.llm.record import Generation, ToolCall
from streamcourse.llm.requests import FAULTS

__all__ = ["Generation", "ToolCall", "make_app", "find", "run", "client", "describe", "MODEL", "FAULTS"]
