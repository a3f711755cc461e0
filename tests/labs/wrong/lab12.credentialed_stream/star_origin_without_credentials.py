# rejected by: test_the_frontend_origin_may_read_it_with_credentials, test_no_other_origin_is_allowed_to_read_it, test_in_chromium_the_frontend_page_streams_with_the_users_cookie
# allow_origins=["*"] without credentials: the stream answers with Access-Control-Allow-Origin: *, which a
# browser never accepts for a request that carried cookies (withCredentials), so the frontend reads nothing.
import asyncio
import secrets
from typing import Annotated

from fastapi import Cookie, Depends, FastAPI, HTTPException
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

    app.add_middleware(CORSMiddleware, allow_origins=["*"])
    return app
