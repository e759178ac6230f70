"""The demo's story: its agents, its customers, and weeks of contacts, as ordered data.

`hub.demo` plays it (`STORY`, step by step); the dates are days ago and times of
day, so that the history always spans the last four weeks.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.values import Channel, Direction

# -- the people ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoAgent:
    key: str
    email: str
    name: str
    role: str
    password: str
    languages: tuple[str, ...]
    teams: tuple[str, ...]


AGENTS = (
    DemoAgent("admin", "admin@omnihub.test", "Sabine Krüger", "admin", "omnihub-admin",
              ("de", "en"), ()),
    DemoAgent("lead", "supervisor@omnihub.test", "Thomas Berger", "supervisor",
              "omnihub-supervisor", ("de", "en"), ("service",)),
    DemoAgent("kam", "keyaccount@omnihub.test", "Katrin Wagner", "agent", "omnihub-keyaccount",
              ("de", "en"), ("key_accounts",)),
    DemoAgent("pool1", "pool1@omnihub.test", "Jonas Fischer", "agent", "omnihub-pool-1",
              ("de",), ("pool", "standard")),
    DemoAgent("pool2", "pool2@omnihub.test", "Emily Clarke", "agent", "omnihub-pool-2",
              ("en", "de"), ("pool", "standard")),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    key: str
    name: str
    email: str
    phone: str | None = None
    company: str | None = None
    tier: str | None = None
    revenue: str = "0"
    language: str = "de"
    birthday: str | None = None
    birthday_in_days: int | None = None  # a birthday coming up, whatever today is
    tags: tuple[str, ...] = ()
    is_prospect: bool = False  # not created here: the intake makes it from a first contact

    def sender(self, channel: str) -> tuple[str, str]:
        if channel in ("sms", "voice") and self.phone is not None:
            return "phone", self.phone
        return "email", self.email


CUSTOMERS = (
    DemoCustomer("hoffmann", "Dr. Martina Hoffmann", "m.hoffmann@hoffmann-maschinenbau.example",
                 "0151 2345678", "Hoffmann Maschinenbau GmbH", "A", "184500.00", "de",
                 "1968-04-12", tags=("Maschinenbau", "Rahmenvertrag")),
    DemoCustomer("becker", "Stefan Becker", "s.becker@becker-logistik.example",
                 "+49 40 30123456", "Becker Logistik AG", "A", "96200.00", "de", "1975-09-30",
                 tags=("Logistik",)),
    DemoCustomer("whitfield", "James Whitfield", "james.whitfield@whitfield-sons.example",
                 "+44 7700 900123", "Whitfield & Sons Ltd", "A", "152000.00", "en", "1971-02-03",
                 tags=("UK", "framework agreement")),
    DemoCustomer("schneider", "Claudia Schneider", "praxis@dr-schneider.example",
                 "+49 221 4567890", "Praxis Dr. Schneider", "B", "18400.00", "de", "1980-06-21",
                 tags=("Arztpraxis",)),
    DemoCustomer("weber", "Markus Weber", "info@weber-elektro.example", "0172 9876543",
                 "Weber Elektrotechnik", "B", "22750.50", "de", birthday_in_days=3,
                 tags=("Handwerk",)),
    DemoCustomer("mitchell", "Sarah Mitchell", "sarah@mitchell-design.example",
                 "+44 7700 900456", "Mitchell Design Studio", "B", "12300.00", "en",
                 "1987-11-08"),
    DemoCustomer("yilmaz", "Ayşe Yılmaz", "a.yilmaz@yilmaz-feinkost.example", "0176 55512345",
                 "Yılmaz Feinkost", "B", "9850.00", "de", "1983-03-15", tags=("Einzelhandel",)),
    DemoCustomer("lehmann", "Peter Lehmann", "peter.lehmann@mail.example", "0160 1234567",
                 tier="C", revenue="480.00", birthday="1959-12-01"),
    DemoCustomer("koch", "Julia Koch", "julia.koch@mail.example", "0157 71234567", tier="C",
                 revenue="129.90", birthday="1994-07-19", tags=("Newsletter",)),
    DemoCustomer("bennett", "Oliver Bennett", "oliver.bennett@mail.example", "+44 7700 900789",
                 tier="C", revenue="310.00", language="en", birthday="1990-05-27"),
    DemoCustomer("schaefer", "Anna Schäfer", "anna.schaefer@mail.example", "0179 2223344",
                 tier="C", revenue="75.00", birthday="2001-10-04"),
    DemoCustomer("neumann", "Tobias Neumann", "t.neumann@neumann-bau.example",
                 is_prospect=True),
)  # fmt: skip
CUSTOMER = {demo.key: demo for demo in CUSTOMERS}
KEY_ACCOUNT_AGENT = "kam"

# -- the story -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contact:
    """A message or call, in or out, ingested like any channel's; `label` names its thread."""

    customer: str
    days_ago: int
    at: str
    channel: Channel
    text: str
    direction: Direction = "inbound"
    subject: str | None = None
    thread: str | None = None
    complaint: bool = False
    call_seconds: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """Something an agent did in the labelled thread, at the given time."""

    label: str
    agent: str
    days_ago: int
    at: str


@dataclass(frozen=True, slots=True)
class Note(Action):
    text: str


@dataclass(frozen=True, slots=True)
class OpenComplaint(Action):
    subject: str
    description: str
    severity: str = "normal"
    due_in_days: int = 2


@dataclass(frozen=True, slots=True)
class UpdateComplaint(Action):
    """Change the complaint opened in the labelled thread."""

    changes: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Close(Action):
    pass


Step = Contact | Note | OpenComplaint | UpdateComplaint | Close

OUT: Direction = "outbound"

STORY: tuple[Step, ...] = (
    # Hoffmann Maschinenbau (A): an offer, a call-back, then a short delivery.
    Contact("hoffmann", 27, "08:42", "email",
            "Sehr geehrte Frau Wagner,\n\nbitte senden Sie uns ein Angebot über 4 Spindellager "
            "und 2 Kugelgewindetriebe für unsere FZ-400 (Seriennummer 40-1187).\n\n"
            "Mit freundlichen Grüßen\nMartina Hoffmann",
            subject="Angebot Ersatzteile FZ-400", thread="hoffmann-offer"),
    Contact("hoffmann", 27, "14:05", "email",
            "Sehr geehrte Frau Dr. Hoffmann,\n\nanbei unser Angebot A-4711. Lieferzeit: "
            "10 Werktage ab Bestellung.\n\nFreundliche Grüße\nKatrin Wagner",
            OUT, "AW: Angebot Ersatzteile FZ-400", "hoffmann-offer"),
    Contact("hoffmann", 20, "10:30", "voice",
            "Rückfrage zum Angebot A-4711: Frau Dr. Hoffmann bittet um einen Staffelpreis ab "
            "10 Stück. Rückruf bis morgen zugesagt.", call_seconds=254),
    Contact("hoffmann", 19, "09:15", "voice",
            "Rückruf: 8 % Staffelrabatt ab 10 Stück bestätigt. Bestellung kommt per E-Mail.",
            OUT, call_seconds=181),
    Contact("hoffmann", 6, "07:58", "email",
            "Sehr geehrte Frau Wagner,\n\nin der Lieferung zu Auftrag 58213 fehlen die beiden "
            "Kugelgewindetriebe. Unsere FZ-400 steht still. Wir brauchen die Teile bis "
            "Freitag.\n\nMartina Hoffmann",
            subject="Reklamation: Lieferung unvollständig (Auftrag 58213)",
            thread="hoffmann-58213", complaint=True, label="hoffmann-58213"),
    Note("hoffmann-58213", "kam", 6, "08:20",
         "Lager bestätigt die Fehlmenge. Express-Versand freigegeben, Kosten tragen wir."),
    UpdateComplaint("hoffmann-58213", "kam", 6, "08:25",
                    (("status", "in_progress"), ("severity", "high"))),
    Contact("hoffmann", 1, "09:03", "sms",
            "Hallo Frau Wagner, gibt es schon eine Sendungsnummer für die fehlenden Teile? "
            "Gruß M. Hoffmann"),
    Contact("hoffmann", 1, "09:11", "sms",
            "Guten Tag Frau Dr. Hoffmann, die Teile gehen heute per Express raus, die "
            "Sendungsnummer folgt per E-Mail. K. Wagner", OUT),
    # Becker Logistik (A): a contract renewal, an invoice over chat.
    Contact("becker", 24, "11:20", "email",
            "Hallo Frau Wagner,\n\nwir möchten den Rahmenvertrag um 12 Monate verlängern. "
            "Können wir nächste Woche telefonieren?\n\nViele Grüße\nStefan Becker",
            subject="Verlängerung Rahmenvertrag", thread="becker-contract"),
    Contact("becker", 23, "08:47", "email",
            "Hallo Herr Becker,\n\ngerne. Passt Ihnen Dienstag um 10 Uhr?\n\n"
            "Viele Grüße\nKatrin Wagner", OUT, "AW: Verlängerung Rahmenvertrag",
            "becker-contract"),
    Contact("becker", 16, "10:02", "voice",
            "Telefonat Vertragsverlängerung: Konditionen wie bisher, 12 Monate. "
            "Vertrag geht heute per Post raus.", call_seconds=612),
    Contact("becker", 3, "15:31", "chat",
            "Hallo, ich finde im Kundenportal unsere letzte Rechnung nicht.", thread="chat-b1"),
    Contact("becker", 3, "15:33", "chat",
            "Guten Tag Herr Becker, ich habe Ihnen die Rechnung R-90117 gerade per E-Mail "
            "geschickt.", OUT, thread="chat-b1"),
    Contact("becker", 3, "15:34", "chat", "Perfekt, danke!", thread="chat-b1"),
    # Whitfield & Sons (A, English).
    Contact("whitfield", 21, "09:40", "email",
            "Dear Katrin,\n\ncould you confirm the delivery schedule for our quarterly order? "
            "We'd like the first shipment in our Leeds warehouse by the 15th.\n\n"
            "Best regards,\nJames", subject="Quarterly order: delivery schedule",
            thread="whitfield-quarterly"),
    Contact("whitfield", 21, "13:12", "email",
            "Dear James,\n\nconfirmed: the first shipment leaves our warehouse on the 10th and "
            "reaches Leeds by the 14th.\n\nKind regards,\nKatrin",
            OUT, "Re: Quarterly order: delivery schedule", "whitfield-quarterly"),
    Contact("whitfield", 9, "16:05", "webform",
            "Please update our invoice address to 12 Park Row, Leeds LS1 5HD.",
            subject="Contact form: invoice address"),
    Contact("whitfield", 2, "10:48", "voice",
            "Call: James asks for an express quote for 20 units of the FZ-400 spindle bearing, "
            "needed by tomorrow.", call_seconds=203),
    # Praxis Dr. Schneider (B): a maintenance appointment and its reminder.
    Contact("schneider", 25, "12:14", "webform",
            "Wir hätten gern einen Wartungstermin für unser Ultraschallgerät, "
            "am liebsten vormittags.", subject="Kontaktformular: Wartungstermin"),
    Contact("schneider", 24, "09:30", "email",
            "Sehr geehrte Frau Schneider,\n\nwir bestätigen Ihren Wartungstermin am "
            "Dienstag um 9:00 Uhr.\n\nMit freundlichen Grüßen\nJonas Fischer",
            OUT, "Ihr Wartungstermin", "schneider-maintenance"),
    Contact("schneider", 11, "17:00", "sms",
            "Erinnerung: Ihr Wartungstermin ist morgen um 9:00 Uhr. Zum Absagen antworten Sie "
            "mit NEIN.", OUT),
    Contact("schneider", 11, "17:42", "sms", "Passt, danke! C. Schneider"),
    # Weber Elektrotechnik (B): a double debit, refunded; a new inquiry.
    Contact("weber", 18, "08:15", "voice",
            "Anruf: Herr Weber beschwert sich, Rechnung R-88412 wurde doppelt abgebucht "
            "(2 × 1.240,00 €). Erstattung zugesagt.", subject="Doppelabbuchung R-88412",
            complaint=True, call_seconds=397,
            label="weber-debit"),
    Note("weber-debit", "pool1", 18, "08:30",
         "Buchhaltung informiert, Rücklastschrift geprüft: Doppelabbuchung bestätigt."),
    Contact("weber", 15, "11:05", "email",
            "Sehr geehrter Herr Weber,\n\ndie doppelte Abbuchung über 1.240,00 € haben wir "
            "heute erstattet. Bitte entschuldigen Sie die Unannehmlichkeiten.\n\n"
            "Mit freundlichen Grüßen\nJonas Fischer",
            OUT, "Erstattung Ihrer Doppelabbuchung", "weber-refund"),
    UpdateComplaint("weber-debit", "pool1", 15, "11:10", (("status", "resolved"),)),
    Close("weber-debit", "pool1", 15, "11:11"),
    Contact("weber", 4, "07:36", "email",
            "Hallo,\n\nhaben Sie 50-m-Kabeltrommeln H07RN-F 3G2,5 vorrätig? Wir bräuchten 6 "
            "Stück bis Ende der Woche.\n\nGruß\nMarkus Weber",
            subject="Anfrage Kabeltrommeln", thread="weber-cable"),
    # Mitchell Design Studio (B, English): a warranty question, then a damaged delivery.
    Contact("mitchell", 14, "14:20", "chat",
            "Hi, does the 24-month warranty also cover the display?", thread="chat-m1"),
    Contact("mitchell", 14, "14:22", "chat",
            "Hi Sarah, yes: the display is covered for the full 24 months.", OUT,
            thread="chat-m1"),
    Contact("mitchell", 14, "14:23", "chat", "Great, thanks!", thread="chat-m1"),
    Contact("mitchell", 5, "09:58", "email",
            "Hello,\n\nthe monitor from order 77120 arrived with a cracked frame. Photos are "
            "attached. Please send a replacement.\n\nSarah Mitchell",
            subject="Damaged delivery: order 77120", thread="mitchell-77120", complaint=True),
    # Yılmaz Feinkost (B).
    Contact("yilmaz", 12, "18:05", "sms",
            "Guten Tag, können Sie am Donnerstag vor 8 Uhr liefern? Der Laden öffnet um 8."),
    Contact("yilmaz", 12, "18:20", "sms",
            "Hallo Frau Yılmaz, ja, wir liefern Donnerstag zwischen 7 und 8 Uhr.", OUT),
    Contact("yilmaz", 8, "13:44", "webform",
            "Wir interessieren uns für ein zweites Kühlregal (Modell KR-180). Bitte um Angebot "
            "inklusive Aufbau.", subject="Kontaktformular: Kühlregal KR-180"),
    # Peter Lehmann (C): a missed appointment, escalated by the supervisor.
    Contact("lehmann", 10, "16:40", "voice",
            "Anruf: Herr Lehmann ist verärgert, der Techniker ist zum vereinbarten Termin "
            "nicht erschienen. Er möchte einen Rückruf vom Vorgesetzten.", call_seconds=288,
            label="lehmann-call"),
    OpenComplaint("lehmann-call", "lead", 10, "17:05", "Techniker nicht erschienen",
                  "Termin am Montag 8-12 Uhr nicht wahrgenommen, keine Absage. Kunde erwartet "
                  "Rückruf vom Teamleiter und einen neuen Termin.", severity="high"),
    Note("lehmann-call", "pool1", 9, "10:15", "Zweimal versucht zu erreichen, nur Mailbox."),
    # Julia Koch (C).
    Contact("koch", 7, "20:12", "chat",
            "Hallo! Wie setze ich mein Passwort fürs Kundenportal zurück?", thread="chat-k1"),
    Contact("koch", 7, "20:14", "chat",
            "Hallo Frau Koch, klicken Sie auf der Anmeldeseite auf „Passwort vergessen“, dann "
            "bekommen Sie eine E-Mail mit einem Link.", OUT, thread="chat-k1"),
    Contact("koch", 7, "20:19", "chat", "Hat geklappt, danke!", thread="chat-k1"),
    Contact("koch", 2, "07:05", "email", "Bitte nehmen Sie mich aus dem Newsletter.",
            subject="Newsletter abbestellen"),
    # Oliver Bennett (C, English).
    Contact("bennett", 13, "19:30", "email",
            "Hi,\n\nmy order 55102 was supposed to arrive last week. Any update?\n\nOliver",
            subject="Order status 55102", thread="bennett-55102"),
    Contact("bennett", 12, "08:10", "email",
            "Hi Oliver,\n\nsorry for the delay: your order shipped yesterday and should arrive "
            "within two days.\n\nBest,\nEmily", OUT, "Re: Order status 55102", "bennett-55102"),
    Contact("bennett", 3, "12:26", "sms", "Parcel arrived today, thanks!"),
    # Anna Schäfer (C).
    Contact("schaefer", 5, "21:47", "webform",
            "Bitte rufen Sie mich wegen meiner Bestellung 60231 zurück, am besten nach 17 Uhr.",
            subject="Kontaktformular: Rückruf erbeten"),
    Contact("schaefer", 4, "17:20", "voice",
            "Rückruf: Bestellung 60231 auf Kundenwunsch storniert, Gutschrift folgt.", OUT,
            call_seconds=142),
    # Tobias Neumann: not yet a customer; the web form makes him a prospect.
    Contact("neumann", 1, "11:55", "webform",
            "Wir suchen 30 LED-Fluter für eine Baustelle in Leipzig ab nächsten Monat. "
            "Bitte um ein Angebot.", subject="Kontaktformular: Baustellenbeleuchtung"),
)  # fmt: skip
