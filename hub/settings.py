"""The hub's settings: one object, read from `OMNIHUB_*` variables and `.env`.

It is built once at start-up and passed in; nothing deeper in the code reads the
environment. A wrong value stops start-up with `SettingsError`, whose message
names the variable in one line (the CLI prints it without a traceback).
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "OMNIHUB_"

# The drivers the hub runs on; plain URLs are mapped onto them for convenience.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./omnihub.db"
    redis_url: str | None = None
    # The stream the hub's events travel on: one per hub sharing a Redis.
    redis_stream: str = Field(default="omnihub:events", min_length=1)
    secret_key: str | None = Field(default=None, repr=False)
    public_url: str = "http://127.0.0.1:8000"

    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_user: str | None = None
    imap_password: str | None = Field(default=None, repr=False)
    imap_folder: str = "INBOX"
    imap_tls: bool = True
    imap_processed_folder: str | None = None
    imap_quarantine_folder: str = "Quarantine"
    imap_poll_seconds: float = Field(default=30.0, gt=0)
    mail_max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=0)

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_tls: bool = True
    mail_from: str = "service@omnihub.invalid"
    # Reply-To: mail_from's mailbox +c{conversation}.{hmac}; off where the mail
    # server does not deliver +detail addresses to the mailbox.
    mail_reply_addresses: bool = True

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = Field(default=None, repr=False)
    twilio_from_number: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"

    default_region: str = "DE"
    sms_help_text: str = Field(
        default="Kundenservice: Antworten Sie einfach auf diese SMS. STOP: keine SMS mehr, "
        "START: wieder an. Customer service: just reply to this SMS. STOP to opt out, "
        "START to opt back in.",
        min_length=1,
        max_length=1600,
    )
    marketing_cap: int = Field(default=4, ge=0)
    marketing_cap_days: int = Field(default=30, ge=1)
    no_marketing_on_open_complaint: bool = True
    outbox_lease_seconds: int = Field(default=300, ge=1)
    outbox_max_attempts: int = Field(default=8, ge=1)
    # Campaigns: messages per second (0: as fast as the connections go), SMTP
    # connections a campaign sends over at once, and how long an approval holds.
    campaign_rate: float = Field(default=0.0, ge=0)
    campaign_connections: int = Field(default=2, ge=1, le=32)
    campaign_approval_hours: float = Field(default=72.0, gt=0)
    history_page_size: int = Field(default=50, ge=1, le=500)
    card_history_size: int = Field(default=20, ge=1, le=200)
    # Routing: the rules file (unset: the one shipped in `routing/`), and how often
    # the SLA and queue timers look at the database.
    routing_rules: str | None = None
    routing_tick_seconds: float = Field(default=5.0, gt=0)
    # History older than this many days is purged (`hub.privacy.retention`); unset keeps it.
    retention_days: int | None = Field(default=None, ge=1)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return str(parse_database_url(value).render_as_string(hide_password=False))

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("public_url", "twilio_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows (e.g. DE, AT, US)")
        return region

    @field_validator("secret_key")
    @classmethod
    def _secret_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _secret(self) -> Settings:
        if self.secret_key is None and self.environment == "production":
            # No field to hang this on: the message names the variable itself.
            raise ValueError(
                f"{ENV_PREFIX}SECRET_KEY: required when {ENV_PREFIX}ENVIRONMENT=production"
            )
        if self.secret_key is None:
            # Development only: sessions do not survive a restart, which is fine there.
            self.secret_key = secrets.token_urlsafe(32)
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def parse_database_url(value: str) -> URL:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"{value!r} is not a database URL") from None
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(f"unsupported database {url.drivername!r}; use sqlite or postgresql")
    if driver.startswith("sqlite") and not url.database:
        raise ValueError("a SQLite URL needs a file path, e.g. sqlite+aiosqlite:///./omnihub.db")
    return url.set(drivername=driver)


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning a validation failure into one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        line = f"{ENV_PREFIX}{field.upper()}: {message}" if field else message
        raise SettingsError(line) from None
