"""Live chat's routes: `WS /channels/chat/ws` and `GET /channels/chat/widget.js`."""

from fastapi import APIRouter

router = APIRouter(prefix="/channels/chat", tags=["channels"])
