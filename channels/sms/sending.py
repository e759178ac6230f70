"""Sending SMS: `TwilioSmsSender` hands an `Outbound` to Twilio's Messages API.

twilio-python's own `Client` makes the request (basic auth with the account
SID and auth token, a form-encoded POST to `/2010-04-01/Accounts/{sid}/
Messages.json`, JSON back), with its API domain pointed at
`OMNIHUB_TWILIO_API_BASE_URL`, so that the tests reach a stand-in on loopback.
The client is synchronous (requests): each send runs in a worker thread, with
a timeout on connecting and on every read. Every message asks for Twilio's
status callbacks at `OMNIHUB_PUBLIC_URL/channels/sms/twilio/status`, where
`delivered` and `undelivered` reach the outbox row; the receipt's provider id
is the message's SID.

Failures map onto the hub's delivery errors:

    connecting failed or timed out (nothing was sent)    ──> TransientDeliveryError
    Twilio answered 429 or 5xx                           ──> TransientDeliveryError
    Twilio answered another 4xx (code and message kept)  ──> PermanentDeliveryError
      21610: the recipient texted STOP to our number     ──> RecipientOptedOutError (permanent)
    no answer in time once the request was sent, or the
      connection broke while waiting for it              ──> UnknownDeliveryError (Twilio may
                                                             have queued it: never resent)
"""

from __future__ import annotations

import asyncio
import logging

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance
from urllib3.exceptions import MaxRetryError

from hub.delivery import (
    DeliveryError,
    PermanentDeliveryError,
    Receipt,
    RecipientRefusedError,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from hub.settings import ENV_PREFIX, Settings, SettingsError
from hub.values import Outbound

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30.0
STATUS_CALLBACK_PATH = "/channels/sms/twilio/status"
OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"
# twilio reads TWILIO_EDGE/TWILIO_REGION from os.environ unless it is handed a
# (non-empty) mapping; the hub's settings are the only place configuration comes from.
_NO_ENVIRONMENT = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}

TwilioError = TwilioRestException | TwilioServiceException


class RecipientOptedOutError(RecipientRefusedError):
    """Twilio refused the message: the recipient opted out (texted STOP) of our number."""

    def __init__(self, message: str, number: str) -> None:
        super().__init__(message, block_reason="sms_stop")
        self.number = number


class TwilioSmsSender:
    """Delivers outbound SMS through Twilio's REST API with twilio-python's client."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        api_base_url: str,
        status_callback: str | None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.from_number = from_number
        self.status_callback = status_callback
        self.http = TwilioHttpClient(timeout=timeout)
        self.client = Client(
            account_sid, auth_token, http_client=self.http, environment=_NO_ENVIRONMENT
        )
        # The Api domain builds every URL from its base_url (twilio.base.domain.Domain).
        self.client.api.base_url = api_base_url

    @classmethod
    def from_settings(
        cls, settings: Settings, *, timeout: float = TIMEOUT_SECONDS
    ) -> TwilioSmsSender | None:
        """The sender, or None when `OMNIHUB_TWILIO_ACCOUNT_SID` is unset."""
        if not settings.twilio_account_sid:
            return None
        for name in ("twilio_auth_token", "twilio_from_number"):
            if not getattr(settings, name):
                raise SettingsError(f"{ENV_PREFIX}{name.upper()}: required to send SMS")
        return cls(
            settings.twilio_account_sid,
            settings.twilio_auth_token or "",
            settings.twilio_from_number or "",
            api_base_url=settings.twilio_api_base_url,
            status_callback=f"{settings.public_url}{STATUS_CALLBACK_PATH}",
            timeout=timeout,
        )

    async def send(self, outbound: Outbound) -> Receipt:
        try:
            message = await asyncio.to_thread(self._create, outbound)
        except (TwilioRestException, TwilioServiceException) as error:
            raise refused(error, outbound.recipient) from error
        except requests.RequestException as error:
            raise lost(error) from error
        if not message.sid:
            raise UnknownDeliveryError("Twilio accepted the message but named no SID")
        return Receipt(provider_id=message.sid)

    def _create(self, outbound: Outbound) -> MessageInstance:
        return self.client.api.account.messages.create(
            to=outbound.recipient,
            from_=self.from_number,
            body=outbound.text,
            status_callback=self.status_callback,
        )

    async def close(self) -> None:
        """Close the pooled connections."""
        if self.http.session is not None:
            await asyncio.to_thread(self.http.session.close)


def refused(error: TwilioError, recipient: str) -> DeliveryError:
    """Twilio's answer to a request it refused, as a delivery error."""
    status, code = error.status, error.code
    text = error.msg if isinstance(error, TwilioRestException) else error.detail or error.title
    reason = f"Twilio {status}, error {code}: {text}"
    if status == 429 or status >= 500:
        return TransientDeliveryError(reason)
    if code == OPTED_OUT:
        return RecipientOptedOutError(reason, recipient)
    return PermanentDeliveryError(reason)


def lost(error: requests.RequestException) -> DeliveryError:
    """A request that got no answer: was it sent? Only a failed connect says surely not."""
    if isinstance(error, requests.ConnectTimeout) or _never_connected(error):
        return TransientDeliveryError(f"cannot reach Twilio: {error}")
    if isinstance(error, requests.ReadTimeout | requests.ConnectionError):
        return UnknownDeliveryError(f"no answer from Twilio after sending: {error}")
    return TransientDeliveryError(f"request to Twilio failed: {error}")


def _never_connected(error: requests.RequestException) -> bool:
    # requests wraps urllib3's exhausted connect retries (refused, DNS, TLS handshake)
    # in MaxRetryError; a connection that broke mid-request is a bare ProtocolError.
    return isinstance(error, requests.ConnectionError) and bool(
        error.args and isinstance(error.args[0], MaxRetryError)
    )
