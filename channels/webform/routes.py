"""The web form's routes: `GET /channels/webform` (the form) and `POST /channels/webform`."""

from fastapi import APIRouter

router = APIRouter(prefix="/channels/webform", tags=["channels"])
