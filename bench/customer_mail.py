"""A service inbox's worth of customer mail, as raw bytes, the same for every seed.

`write_mail()` returns `count` messages from a pool of customers (500 by
default), oldest first, as a support address receives them:

- senders drawn unevenly (a few customers write often, most once or twice),
  display names with umlauts (RFC 2047 in the From header);
- subjects from a pool of German and English service topics;
- plain text, or multipart/alternative text+html (`HTML_SHARE`), a few with a
  small PDF or PNG attached (`ATTACHMENT_SHARE`);
- follow-ups (`REPLY_SHARE`): "Re:" of the customer's earlier mail, with
  In-Reply-To, References and a quoted attribution, so the hub threads them
  into that conversation.

Every Message-ID is unique, so no message is a duplicate of another: the hub
must store each as one interaction. Lines end in CRLF, as on the wire.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

REPLY_SHARE = 0.25
HTML_SHARE = 0.35
ATTACHMENT_SHARE = 0.03
SERVICE = Address("Kundenservice", "service", "hub.example")

FIRST_NAMES = (
    "Anna", "Jürgen", "Sophie", "Lukas", "Zoë", "Mehmet", "Chloé", "Björn", "Olga",
    "Thomas", "Émile", "Fatma", "Ingrid", "Paul", "Leonie", "Søren", "Marta", "Jan",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "Schmidt", "Weiß", "Öztürk", "Becker", "Hoffmann", "Krüger", "Nowak",
    "Dubois", "Fischer", "Jäger", "Lindqvist", "Rossi", "Wagner", "Schäfer", "Yılmaz",
)  # fmt: skip
DOMAINS = (
    "gmail.com", "web.de", "gmx.de", "outlook.com", "t-online.de", "posteo.de",
    "example-handel.de", "buero-kraemer.de", "yahoo.com", "icloud.com",
)  # fmt: skip
TOPICS = (
    "Lieferung verspätet", "Frage zu Bestellung #{n}", "Rechnung RE-2024-{n}",
    "Rücksendung Artikel {n}", "Reklamation: defekter Artikel", "Änderung der Lieferadresse",
    "Where is my order {n}?", "Invoice question", "Kündigung Vertrag {n}",
    "Gutschein funktioniert nicht", "Termin für Montage", "Falsche Größe geliefert",
)  # fmt: skip
SENTENCES = (
    "Ich habe am Montag bestellt und noch keine Versandbestätigung bekommen.",
    "Könnten Sie mir bitte sagen, wann die Ware ankommt?",
    "Das Paket war beschädigt, die Verpackung ist an einer Ecke eingedrückt.",
    "Im Anhang finden Sie ein Foto vom Schaden.",
    "Die Rechnung weist einen höheren Betrag aus als im Warenkorb angezeigt.",
    "Bitte stornieren Sie die Bestellung, falls sie noch nicht verschickt wurde.",
    "I ordered two items but only one arrived.",
    "Could you please send me a new invoice with my company address?",
    "Vielen Dank für die schnelle Antwort, das hat mir sehr geholfen.",
    "Leider ist das Problem immer noch nicht gelöst.",
    "Ich bin tagsüber unter der angegebenen Nummer erreichbar.",
    "Der Gutscheincode wird im Bestellvorgang als ungültig abgelehnt.",
    "Wir möchten für unser Büro zehn weitere Stühle bestellen.",
    "Can I exchange the jacket for a larger size?",
)


@dataclass(frozen=True, slots=True)
class Customer:
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class Mail:
    raw: bytes
    sender: str
    message_id: str
    is_reply: bool
    has_html: bool
    attachments: int


def write_mail(count: int, customers: int, seed: int) -> list[Mail]:
    """`count` messages from up to `customers` senders, oldest first."""
    rng = random.Random(seed)
    people = [_customer(rng, n) for n in range(customers)]
    weights = [1 / (rank + 1) ** 0.6 for rank in range(customers)]  # a few write often
    earlier: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
    start = datetime.now(UTC) - timedelta(days=30)
    step = timedelta(days=29) / max(count, 1)
    mail = []
    for index in range(count):
        person = rng.choices(people, weights)[0]
        when = start + step * index + timedelta(seconds=rng.randrange(int(step.total_seconds())))
        mail.append(_one_mail(rng, index, person, when, earlier.setdefault(person.address, [])))
    return mail


def _customer(rng: random.Random, n: int) -> Customer:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{first}.{last}".lower().encode("ascii", "ignore").decode()
    return Customer(f"{first} {last}", f"{local}.{n}@{rng.choice(DOMAINS)}")


def _one_mail(
    rng: random.Random,
    index: int,
    person: Customer,
    when: datetime,
    thread: list[tuple[str, str, tuple[str, ...]]],
) -> Mail:
    """One message; a follow-up when the customer wrote before and the dice say so."""
    message = EmailMessage()
    message["From"] = Address(person.name, addr_spec=person.address)
    message["To"] = SERVICE
    message["Date"] = format_datetime(when)
    message_id = f"<{when:%Y%m%d%H%M%S}.{index}.{rng.getrandbits(40):010x}@{_domain(person)}>"
    message["Message-ID"] = message_id
    text = _paragraphs(rng)
    is_reply = bool(thread) and rng.random() < REPLY_SHARE
    if is_reply:
        subject, parent_id, parent_refs = rng.choice(thread)
        message["Subject"] = subject if subject.startswith("Re: ") else f"Re: {subject}"
        message["In-Reply-To"] = parent_id
        message["References"] = " ".join((*parent_refs, parent_id)[-10:])
        text += _quote(rng, when, person)
        thread.append((str(message["Subject"]), message_id, (*parent_refs, parent_id)))
    else:
        message["Subject"] = rng.choice(TOPICS).format(n=rng.randrange(10_000, 99_999))
        thread.append((str(message["Subject"]), message_id, ()))
    message.set_content(text + f"\n\nViele Grüße\n{person.name}\n")
    has_html = rng.random() < HTML_SHARE
    if has_html:
        message.add_alternative(_html(text, person.name), subtype="html")
    attachments = 1 if rng.random() < ATTACHMENT_SHARE else 0
    if attachments:
        _attach(rng, message)
    raw = message.as_bytes(policy=policy.SMTP)
    return Mail(raw, person.address, message_id, is_reply, has_html, attachments)


def _domain(person: Customer) -> str:
    return person.address.rpartition("@")[2]


def _paragraphs(rng: random.Random) -> str:
    paragraphs = [
        " ".join(rng.choices(SENTENCES, k=rng.randint(1, 5))) for _ in range(rng.randint(1, 4))
    ]
    return "Guten Tag,\n\n" + "\n\n".join(paragraphs)


def _quote(rng: random.Random, when: datetime, person: Customer) -> str:
    earlier = when - timedelta(hours=rng.randint(2, 72))
    quoted = "\n".join(f"> {line}" for line in _paragraphs(rng).split("\n"))
    return f"\n\nAm {earlier:%d.%m.%Y um %H:%M} schrieb {person.name} <{person.address}>:\n{quoted}"


def _html(text: str, name: str) -> str:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in text.split("\n\n"))
    return (
        '<html><head><style>p{font-family:Arial}</style></head><body dir="auto">'
        f"{body}<p>Viele Grüße<br>{name}</p></body></html>"
    )


def _attach(rng: random.Random, message: EmailMessage) -> None:
    size = rng.randint(2_000, 40_000)
    if rng.random() < 0.5:
        content = b"%PDF-1.4\n" + rng.randbytes(size)
        message.add_attachment(content, "application", "pdf", filename="Rechnung.pdf")
    else:
        content = b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)
        message.add_attachment(content, "image", "png", filename="Schaden Foto.png")
