"""Twilio's SMS webhooks: `POST /channels/sms/twilio` and its status callback."""

from fastapi import APIRouter

router = APIRouter(prefix="/channels/sms", tags=["channels"])
