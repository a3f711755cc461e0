# rejected by: test_complete_calls_are_run_and_the_model_answers_with_their_results
# Asks the model again without the tool messages: the model has no results, so it calls the tools again.
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import openai
from fastapi import Depends, FastAPI, HTTPException
from fastapi.sse import EventSourceResponse, ServerSentEvent
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk


def relay_tool_calls(client: AsyncOpenAI) -> FastAPI:
    """An app whose POST /chat relays the model's tool calls as they stream, runs them, and relays the answer."""
    app = FastAPI()

    async def open_model(body: ChatRequest) -> AsyncStream[ChatCompletionChunk]:
        try:  # before the response starts: a refusal can still be a real HTTP error
            return await client.chat.completions.create(
                model=body.model, messages=[{"role": "user", "content": body.prompt}], tools=TOOLS, stream=True
            )
        except openai.RateLimitError as exc:
            raise HTTPException(429, f"the model is busy, try again shortly: {exc.message}") from exc
        except openai.APIError as exc:
            raise HTTPException(502, f"the model failed before answering: {exc.message}") from exc

    def event(kind: str, /, **data: Any) -> ServerSentEvent:
        return ServerSentEvent(event=kind, data=data)

    async def relay_calls(
        stream: AsyncStream[ChatCompletionChunk], calls: dict[int, dict]
    ) -> AsyncIterator[ServerSentEvent]:
        async with stream:  # closes the model's stream however this ends
            async for chunk in stream:
                for choice in chunk.choices:  # the usage chunk, if any, has none
                    for part in choice.delta.tool_calls or []:
                        call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                        if part.id:
                            call["id"] = part.id
                            call["name"] = part.function.name or ""
                            yield event("tool", index=part.index, id=part.id, name=call["name"])
                        fragment = (part.function.arguments if part.function else None) or ""
                        if fragment:
                            call["arguments"] += fragment
                            yield event("arguments", index=part.index, delta=fragment)

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(
        body: ChatRequest, stream: Annotated[AsyncStream[ChatCompletionChunk], Depends(open_model)]
    ) -> AsyncIterator[ServerSentEvent]:
        calls: dict[int, dict] = {}
        try:
            async for sse in relay_calls(stream, calls):
                yield sse
            results = []
            for index in sorted(calls):  # only now is each call's JSON complete
                call = calls[index]
                arguments = json.loads(call["arguments"])
                yield event("call", index=index, id=call["id"], name=call["name"], arguments=arguments)
                output = run_tool(call["name"], arguments)
                yield event("result", index=index, output=output)
                results.append({"role": "tool", "tool_call_id": call["id"], "content": output})
            assistant = {
                "role": "assistant",
                "tool_calls": [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for _, c in sorted(calls.items())
                ],
            }
            answer = await client.chat.completions.create(
                model=body.model,
                messages=[{"role": "user", "content": body.prompt}],
                tools=TOOLS,
                stream=True,
            )
            async with answer:
                async for chunk in answer:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield event("token", text=choice.delta.content)
            yield event("done")
        except (openai.APIError, ValueError) as exc:  # after the first byte: report in the stream
            yield event("error", message=str(exc))

    return app
