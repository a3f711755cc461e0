# rejected by: test_events_without_a_valid_session_are_refused_with_401[user_name_as_cookie]
# The cookie holds the user's name. Anyone who sets "session=alice" in their own browser is alice.
import asyncio
from typing import Annotated

from fastapi import Cookie, Depends, FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent


def make_app(frontend):
    app = FastAPI()

    @app.get("/login")
    async def login(user: str):
        response = JSONResponse({"user": user})
        response.set_cookie("session", user, httponly=True, samesite="lax")
        return response

    def current_user(session: Annotated[str | None, Cookie()] = None) -> str:
        if not session or session == "not-a-session":
            raise HTTPException(401, "log in first")
        return session

    @app.get("/events", response_class=EventSourceResponse)
    async def events(user: Annotated[str, Depends(current_user)]):
        for n in (1, 2, 3):
            yield ServerSentEvent(event="tick", data={"user": user, "n": n})
            await asyncio.sleep(0.05)
        yield ServerSentEvent(event="done", data={"user": user})

    app.add_middleware(CORSMiddleware, allow_origins=[frontend], allow_credentials=True)
    return app
