# rejected by: test_the_frontend_origin_may_read_it_with_credentials, test_in_chromium_the_frontend_page_streams_with_the_users_cookie
# No CORS at all: it works with curl and from a page on the same origin, but a page on the frontend
# origin gets no Access-Control-Allow-Origin, and the browser keeps the stream from it.
import asyncio
import secrets
from typing import Annotated

from fastapi import Cookie, Depends, FastAPI, HTTPException
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

    def current_user(session: Annotated[str | None, Cookie()] = None) -> str:
        if session not in sessions:
            raise HTTPException(401, "log in first")
        return sessions[session]

    @app.get("/events", response_class=EventSourceResponse)
    async def events(user: Annotated[str, Depends(current_user)]):
        for n in (1, 2, 3):
            yield ServerSentEvent(event="tick", data={"user": user, "n": n})
            await asyncio.sleep(0.05)
        yield ServerSentEvent(event="done", data={"user": user})

    return app
