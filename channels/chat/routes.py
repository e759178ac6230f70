"""Live chat's routes: `WS /channels/chat/ws` and `GET /channels/chat/widget.js`.

The socket speaks the protocol of `channels.chat.protocol`. It finds its
session registry in `app.state.chat` (the one the outbox's `ChatSender`
writes to, see `channels.chat.wiring`); without one it closes 1013.

    accept ─> reader loop: receive ─> parse ─> handler ─┐
                 ^                                     │  FrameError -> error frame, go on
                 └─────────────────────────────────────┘  CloseError -> (error frame) + close
    writer task: outgoing queue ─> socket                 disconnect  -> detach, stop

The socket needs no cookie: a page on any site may embed the widget, and the
session token in `hello` is the only credential.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Response, WebSocket

from channels.chat.connection import Connection, Disconnected
from channels.chat.handlers import Chat, handle
from channels.chat.protocol import CLOSE_TRY_AGAIN, CloseError, FrameError, parse_frame
from channels.chat.sessions import ChatRegistry

router = APIRouter(prefix="/channels/chat", tags=["channels"])

WIDGET_TYPE = "text/javascript; charset=utf-8"


@router.websocket("/ws")
async def chat_socket(websocket: WebSocket) -> None:
    registry: ChatRegistry | None = getattr(websocket.app.state, "chat", None)
    await websocket.accept()
    if registry is None:
        await websocket.close(CLOSE_TRY_AGAIN, "chat_not_wired")
        return
    connection = Connection(websocket, registry.config)
    chat = Chat(websocket.app.state.hub, registry, connection)
    connection.start()
    try:
        await _converse(chat)
    finally:
        if chat.claim is not None:
            registry.detach(chat.claim.session, connection)
        await connection.finish()


async def _converse(chat: Chat) -> None:
    """Read and handle frames until the client leaves or a close is due."""
    connection = chat.connection
    while not connection.closing:
        try:
            await handle(chat, parse_frame(await connection.receive()))
        except FrameError as error:
            connection.offer_error(error)
        except CloseError as close:
            if close.error is not None:
                connection.offer_error(close.error)
            connection.close(close.code, close.reason)
        except Disconnected:
            return


@cache
def widget_source() -> str:
    return (files("channels.chat") / "static" / "widget.js").read_text(encoding="utf-8")


@router.get("/widget.js", response_class=Response)
async def widget() -> Response:
    """The embeddable chat widget: `<script src=".../channels/chat/widget.js" defer>`."""
    return Response(
        widget_source(),
        media_type=WIDGET_TYPE,
        headers={"Cache-Control": "public, max-age=300"},
    )
