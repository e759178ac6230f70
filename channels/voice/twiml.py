"""TwiML for calls: a `CallPlan` rendered as Twilio's voice markup, with the texts spoken.

Every answer greets the caller in the plan's language (and, unless nobody is
free, says it connects), then routes the call:

    dial       <Dial timeout action=dial-ended><Client>agent-{id}</Client></Dial>
               (dial-ended answers the fallback: the queue, or voicemail)
    enqueue    <Enqueue action=queue-left?queue={queue}>{queue}</Enqueue>
    voicemail  <Say>leave a message, we call back</Say>
               <Record action=voicemail recordingStatusCallback=voicemail/> <Hangup/>

Callback URLs are absolute, under `OMNIHUB_PUBLIC_URL`: the URL Twilio signs
is the URL it was given, and the signature check compares against that.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from channels.voice.call_plan import ENGLISH, GERMAN, CallPlan

DIAL_TIMEOUT_SECONDS = 20
VOICEMAIL_MAX_SECONDS = 120

# Amazon Polly voices through Twilio, one per language the hub speaks.
VOICES = {GERMAN: "Polly.Marlene", ENGLISH: "Polly.Amy"}
GREETINGS = {
    GERMAN: "Vielen Dank für Ihren Anruf.",
    ENGLISH: "Thank you for calling.",
}
CONNECTING = {
    GERMAN: "Einen Moment bitte, wir verbinden Sie.",
    ENGLISH: "One moment please, we are connecting you.",
}
NEXT_FREE = {
    GERMAN: "Ihr Ansprechpartner ist gerade nicht erreichbar. Wir verbinden Sie mit dem "
    "nächsten freien Kollegen.",
    ENGLISH: "Your contact is not available right now. We are connecting you to the next "
    "free colleague.",
}
VOICEMAIL_PROMPTS = {
    GERMAN: (
        "Leider ist gerade niemand frei. Bitte hinterlassen Sie nach dem Signalton "
        "eine Nachricht. Wir rufen Sie so bald wie möglich zurück."
    ),
    ENGLISH: (
        "Unfortunately nobody is free to take your call right now. Please leave a "
        "message after the tone. We will call you back as soon as we can."
    ),
}
GOODBYES = {
    GERMAN: "Vielen Dank für Ihre Nachricht. Auf Wiederhören.",
    ENGLISH: "Thank you for your message. Goodbye.",
}


@dataclass(frozen=True, slots=True)
class CallbackUrls:
    """Where Twilio reports what became of a call's <Dial>, <Enqueue> and <Record>."""

    dial_ended: str
    queue_left: str
    voicemail: str

    @classmethod
    def under(cls, base: str) -> CallbackUrls:
        """The URLs below the voice webhook's own public URL `base`."""
        return cls(f"{base}/dial-ended", f"{base}/queue-left", f"{base}/voicemail")


def _say(response: VoiceResponse, text: str, language: str) -> None:
    response.say(text, language=language, voice=VOICES[language])


def _route(response: VoiceResponse, plan: CallPlan, urls: CallbackUrls) -> None:
    if plan.action == "dial":
        dial = response.dial(timeout=DIAL_TIMEOUT_SECONDS, action=urls.dial_ended, method="POST")
        dial.client(plan.client)
    elif plan.action == "enqueue":
        # The action names the queue, so a caller bridged from it is known answered there.
        action = f"{urls.queue_left}?{urlencode({'queue': plan.queue})}"
        response.enqueue(plan.queue, action=action, method="POST")
    else:
        _say(response, VOICEMAIL_PROMPTS[plan.language], plan.language)
        response.record(
            action=urls.voicemail,
            method="POST",
            recording_status_callback=urls.voicemail,
            recording_status_callback_method="POST",
            max_length=VOICEMAIL_MAX_SECONDS,
            play_beep=True,
        )
        response.hangup()


def render_answer(plan: CallPlan, urls: CallbackUrls) -> str:
    """The answer to an incoming call: the greeting, then the plan."""
    response = VoiceResponse()
    _say(response, GREETINGS[plan.language], plan.language)
    if plan.action != "voicemail":
        _say(response, CONNECTING[plan.language], plan.language)
    _route(response, plan, urls)
    return str(response)


def render_fallback(plan: CallPlan, urls: CallbackUrls) -> str:
    """The plan for a caller greeted already, whose first destination did not answer."""
    response = VoiceResponse()
    if plan.action == "enqueue":
        _say(response, NEXT_FREE[plan.language], plan.language)
    _route(response, plan, urls)
    return str(response)


def render_goodbye(language: str) -> str:
    language = language if language in GOODBYES else ENGLISH
    response = VoiceResponse()
    _say(response, GOODBYES[language], language)
    response.hangup()
    return str(response)


def render_hangup() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)
