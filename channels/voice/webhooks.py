"""Twilio's voice webhooks: `POST /channels/voice/twilio` and its status callback."""

from fastapi import APIRouter

router = APIRouter(prefix="/channels/voice", tags=["channels"])
