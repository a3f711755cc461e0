# rejected by: test_events_without_a_valid_session_are_refused_with_401[no_cookie], test_events_without_a_valid_session_are_refused_with_401[user_name_as_cookie], test_events_without_a_valid_session_are_refused_with_401[unknown_session]
# Checks the session inside the generator (known error 21): by then the 200 has been sent, so a
# visitor without a session gets an empty 200 stream — and an EventSource reconnects to it for ever.
import asyncio
import secrets

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent


def make_app(frontend):
    app = FastAPI()
    sessions = {}

    @app.get("/login")
    async def login(user: str):
        token = secrets.token_urlsafe(16)
        sessions[token] = user
        response = JSONResponse({"user": user})
        response.set_cookie("session", token, httponly=True, samesite="lax")
        return response

    @app.get("/events", response_class=EventSourceResponse)
    async def events(request: Request):
        user = sessions.get(request.cookies.get("session", ""))
        if user is None:
            raise HTTPException(401, "log in first")
        for n in (1, 2, 3):
            yield ServerSentEvent(event="tick", data={"user": user, "n": n})
            await asyncio.sleep(0.05)
        yield ServerSentEvent(event="done", data={"user": user})

    app.add_middleware(CORSMiddleware, allow_origins=[frontend], allow_credentials=True)
    return app
