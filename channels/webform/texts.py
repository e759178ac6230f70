"""Every word the web form shows, in German and English, and which language a visitor gets.

The language is `?lang=` when it names one we have, else the first language of
`Accept-Language` (by its q-values, RFC 9110 §12.5.4) that we have, else
English. Both tables have the same keys; a test keeps them in step.
"""

from __future__ import annotations

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "en"
TOPICS = ("inquiry", "complaint", "order", "other")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Contact us",
        "intro": "Write to us and we will get back to you. "
        "Please give an e-mail address or a phone number so that we can answer.",
        "languages": "Language",
        "required": "(required)",
        "optional": "(optional)",
        "label_name": "Your name",
        "contact_legend": "How can we reach you?",
        "label_email": "E-mail address",
        "label_phone": "Phone number",
        "contact_hint": "An e-mail address or a phone number, at least one of the two.",
        "label_topic": "What is it about?",
        "topic_inquiry": "A question",
        "topic_complaint": "A complaint",
        "topic_order": "An order",
        "topic_other": "Something else",
        "label_subject": "Subject",
        "label_message": "Your message",
        "label_attachments": "Attachments",
        "attachments_hint": "Up to {count} files, each up to {megabytes} MB.",
        "attachments_again": "Please choose your files again: a browser cannot keep them.",
        "honeypot": "Leave this field empty",
        "privacy": "We use your details only to answer your message.",
        "submit": "Send message",
        "error_prefix": "Error",
        "error_summary": "Please check your entries",
        "thanks_title": "Thank you for your message",
        "thanks_text": "We have received it and will get back to you as soon as we can.",
        "reference": "Your reference",
        "thanks_mailed": "We have sent you a confirmation by e-mail.",
        "thanks_unknown": "This page has expired. Your message, if you sent one, has arrived.",
        "another": "Send another message",
        "error_required_name": "Please enter your name.",
        "error_required_message": "Please enter your message.",
        "error_contact": "Please give an e-mail address or a phone number.",
        "error_invalid_email": "Please enter an e-mail address like name@example.com.",
        "error_invalid_phone": "Please enter a phone number like +49 30 1234567.",
        "error_invalid_topic": "Please choose one of the topics.",
        "error_too_long": "Please use at most {limit} characters.",
        "error_not_text": "This must be text.",
        "error_too_many": "Please attach at most {limit} files.",
        "error_invalid_submission_id": "A submission id is 1 to 150 letters, digits, - or _.",
        "reject_honeypot": "Your message looks like automated spam and was not sent. "
        "If you filled in the form yourself, please reload the page and send it again.",
        "reject_form_token": "The form could not be verified. Please send it again.",
        "reject_expired": "The form was open for too long. Please check it and send it again.",
        "reject_too_fast": "That was very fast. Please check your entries and send the form again.",
        "reject_rate_limited": "You have sent several messages in a short time. "
        "Please try again in {minutes} minutes.",
        "reject_too_large": "Your message with its attachments is too large "
        "(at most {megabytes} MB in all). Please attach fewer or smaller files.",
        "reject_unreadable": "Your message could not be read. Please send it again.",
        "reject_unsupported": "Please send the form as a web form or as JSON.",
    },
    "de": {
        "title": "Kontakt",
        "intro": "Schreiben Sie uns, wir melden uns bei Ihnen. "
        "Bitte geben Sie eine E-Mail-Adresse oder eine Telefonnummer an, "
        "damit wir antworten können.",
        "languages": "Sprache",
        "required": "(Pflichtfeld)",
        "optional": "(freiwillig)",
        "label_name": "Ihr Name",
        "contact_legend": "Wie erreichen wir Sie?",
        "label_email": "E-Mail-Adresse",
        "label_phone": "Telefonnummer",
        "contact_hint": "Eine E-Mail-Adresse oder eine Telefonnummer, mindestens eins von beiden.",
        "label_topic": "Worum geht es?",
        "topic_inquiry": "Eine Frage",
        "topic_complaint": "Eine Reklamation",
        "topic_order": "Eine Bestellung",
        "topic_other": "Etwas anderes",
        "label_subject": "Betreff",
        "label_message": "Ihre Nachricht",
        "label_attachments": "Anhänge",
        "attachments_hint": "Bis zu {count} Dateien, jede bis zu {megabytes} MB.",
        "attachments_again": "Bitte wählen Sie Ihre Dateien noch einmal aus: "
        "ein Browser kann sie nicht behalten.",
        "honeypot": "Dieses Feld bitte leer lassen",
        "privacy": "Wir verwenden Ihre Angaben nur, um Ihre Nachricht zu beantworten.",
        "submit": "Nachricht senden",
        "error_prefix": "Fehler",
        "error_summary": "Bitte prüfen Sie Ihre Angaben",
        "thanks_title": "Vielen Dank für Ihre Nachricht",
        "thanks_text": "Wir haben sie erhalten und melden uns so bald wie möglich bei Ihnen.",
        "reference": "Ihre Referenz",
        "thanks_mailed": "Wir haben Ihnen eine Bestätigung per E-Mail geschickt.",
        "thanks_unknown": "Diese Seite ist abgelaufen. Ihre Nachricht, "
        "falls Sie eine gesendet haben, ist angekommen.",
        "another": "Eine weitere Nachricht senden",
        "error_required_name": "Bitte geben Sie Ihren Namen ein.",
        "error_required_message": "Bitte geben Sie Ihre Nachricht ein.",
        "error_contact": "Bitte geben Sie eine E-Mail-Adresse oder eine Telefonnummer an.",
        "error_invalid_email": "Bitte geben Sie eine E-Mail-Adresse wie name@example.com ein.",
        "error_invalid_phone": "Bitte geben Sie eine Telefonnummer wie 030 1234567 ein.",
        "error_invalid_topic": "Bitte wählen Sie eines der Themen.",
        "error_too_long": "Bitte verwenden Sie höchstens {limit} Zeichen.",
        "error_not_text": "Hier ist Text erwartet.",
        "error_too_many": "Bitte hängen Sie höchstens {limit} Dateien an.",
        "error_invalid_submission_id": "Eine Submission-ID hat 1 bis 150 Buchstaben, "
        "Ziffern, - oder _.",
        "reject_honeypot": "Ihre Nachricht sieht nach automatischem Spam aus und wurde nicht "
        "gesendet. Wenn Sie das Formular selbst ausgefüllt haben, laden Sie die Seite bitte "
        "neu und senden Sie es noch einmal.",
        "reject_form_token": "Das Formular konnte nicht geprüft werden. "
        "Bitte senden Sie es noch einmal.",
        "reject_expired": "Das Formular war zu lange geöffnet. "
        "Bitte prüfen Sie es und senden Sie es noch einmal.",
        "reject_too_fast": "Das ging sehr schnell. Bitte prüfen Sie Ihre Angaben "
        "und senden Sie das Formular noch einmal.",
        "reject_rate_limited": "Sie haben in kurzer Zeit mehrere Nachrichten gesendet. "
        "Bitte versuchen Sie es in {minutes} Minuten noch einmal.",
        "reject_too_large": "Ihre Nachricht ist mit den Anhängen zu groß "
        "(höchstens {megabytes} MB insgesamt). Bitte hängen Sie weniger "
        "oder kleinere Dateien an.",
        "reject_unreadable": "Ihre Nachricht konnte nicht gelesen werden. "
        "Bitte senden Sie sie noch einmal.",
        "reject_unsupported": "Bitte senden Sie das Formular als Webformular oder als JSON.",
    },
}


def text(language: str, key: str, **params: object) -> str:
    """One text in the language, with its `{placeholders}` filled in."""
    return TEXTS[language][key].format(**params)


def choose_language(requested: str | None, accept_language: str | None) -> str:
    """`?lang=` if we have it, else the visitor's preferred language we have, else English."""
    wanted = (requested or "").strip().lower()[:2]
    if wanted in LANGUAGES:
        return wanted
    for tag in parse_accept_language(accept_language or ""):
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE


def parse_accept_language(header: str) -> list[str]:
    """The primary language tags of an Accept-Language header, most wanted first."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        quality = _quality(params)
        if tag and quality > 0:
            weighted.append((-quality, position, tag.split("-")[0].strip().lower()))
    return [tag for _, _, tag in sorted(weighted)]


def _quality(params: str) -> float:
    name, _, value = params.strip().partition("=")
    if name.strip().lower() != "q":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return 0.0
