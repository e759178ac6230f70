"""The Twilio SMS sender alone, without a hub: how Twilio's refusals, a wrong token, nothing
listening, a lost connection and no answer in time map onto the hub's delivery errors."""

from __future__ import annotations

import pytest

from channels.sms.sending import RecipientOptedOutError, TwilioSmsSender
from hub.delivery import (
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from hub.settings import Settings, SettingsError
from hub.values import Outbound
from tests.peers.smtp import find_free_port
from tests.peers.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    OUR_NUMBER,
    TwilioApi,
)
from tests.sms_steps import ANNA


def outbound(recipient: str = ANNA) -> Outbound:
    return Outbound(channel="sms", recipient=recipient, text="Hallo", idempotency_key="k")


def bare_sender(api_url: str, token: str = AUTH_TOKEN, timeout: float = 5.0) -> TwilioSmsSender:
    return TwilioSmsSender(
        ACCOUNT_SID, token, OUR_NUMBER, api_base_url=api_url, status_callback=None, timeout=timeout
    )


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (429, 20429, TransientDeliveryError),
        (500, 20500, TransientDeliveryError),
        (503, 20503, TransientDeliveryError),
        (400, 21211, PermanentDeliveryError),
        (400, 21610, RecipientOptedOutError),
    ],
)
async def test_twilios_refusals_map_onto_the_hubs_delivery_errors(
    twilio_api: TwilioApi, status: int, code: int, error: type[Exception]
):
    twilio_api.fail_next(status, code, "refused by the test")
    sender = bare_sender(twilio_api.url)

    try:
        with pytest.raises(error) as raised:
            await sender.send(outbound())
    finally:
        await sender.close()

    assert type(raised.value) is error
    assert str(code) in str(raised.value) and "refused by the test" in str(raised.value)


async def test_a_wrong_auth_token_is_a_permanent_failure(twilio_api: TwilioApi):
    sender = bare_sender(twilio_api.url, token="wrong")

    try:
        with pytest.raises(PermanentDeliveryError, match="20003"):
            await sender.send(outbound())
    finally:
        await sender.close()


async def test_nothing_listening_is_a_transient_failure():
    sender = bare_sender(f"http://127.0.0.1:{find_free_port()}")

    try:
        with pytest.raises(TransientDeliveryError):
            await sender.send(outbound())
    finally:
        await sender.close()


async def test_a_connection_lost_after_the_request_went_out_is_an_unknown_outcome(
    twilio_api: TwilioApi,
):
    twilio_api.drop_next()
    sender = bare_sender(twilio_api.url)

    try:
        with pytest.raises(UnknownDeliveryError):
            await sender.send(outbound())
    finally:
        await sender.close()


async def test_no_answer_in_time_after_the_request_went_out_is_an_unknown_outcome(
    twilio_api: TwilioApi,
):
    twilio_api.stall_next()
    sender = bare_sender(twilio_api.url, timeout=0.5)

    try:
        with pytest.raises(UnknownDeliveryError):
            await sender.send(outbound())
    finally:
        await sender.close()

    assert twilio_api.requests == 1


def test_without_an_account_sid_there_is_no_sms_sender_and_without_a_from_number_an_error():
    bare = Settings(_env_file=None, secret_key="x" * 32)

    assert TwilioSmsSender.from_settings(bare) is None
    with pytest.raises(SettingsError, match="OMNIHUB_TWILIO_FROM_NUMBER"):
        TwilioSmsSender.from_settings(
            bare.model_copy(update={"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": "t"})
        )
