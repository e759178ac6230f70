"""The web form: the customer's own contact form, embeddable, without JavaScript if need be.

    routes        GET/POST /channels/webform and the thank-you page: the HTTP edge
    submission    the body read (bounded) into a `Submission`, its field checks, the `Inbound`
    spam          the ordered table of spam rules, and the per-address rate window
    rejections    why a submission is refused, with which status; their count for /metrics
    tokens        the signed form token (submission id, time served) and thank-you token
    confirmation  the reference, and the confirmation e-mail queued in the outbox
    texts         every word in German and English, and which language a visitor gets

Pages: `templates/webform.html` and `webform_thanks.html` (frame `webform_page.html`);
the e-mail: `templates/messages/webform_confirmation.{de,en}.txt`.
"""
