"""Settings: read from OMNIHUB_* and .env; a wrong one is one line naming the variable."""

from __future__ import annotations

import pytest

from hub.settings import SettingsError, load_settings


def test_defaults_give_an_embedded_sqlite_hub(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    settings = load_settings()

    assert settings.database_url == "sqlite+aiosqlite:///./omnihub.db"
    assert settings.redis_url is None
    assert settings.default_region == "DE"
    assert len(settings.secret_key) >= 32


def test_settings_come_from_the_environment_and_a_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OMNIHUB_DEFAULT_REGION=at\nOMNIHUB_IMAP_HOST=mail.local\n")
    monkeypatch.setenv("OMNIHUB_DATABASE_URL", "postgresql://postgres@127.0.0.1/omnihub")

    settings = load_settings()

    assert settings.default_region == "AT"
    assert settings.imap_host == "mail.local"
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1/omnihub"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OMNIHUB_DATABASE_URL", "mysql://localhost/x", "unsupported database"),
        ("OMNIHUB_DATABASE_URL", "not a url", "not a database URL"),
        ("OMNIHUB_REDIS_URL", "http://127.0.0.1:6379", "redis://"),
        ("OMNIHUB_SECRET_KEY", "short", "at least 32"),
        ("OMNIHUB_DEFAULT_REGION", "XX", "region"),
        ("OMNIHUB_SMTP_PORT", "99999", "65535"),
        ("OMNIHUB_PUBLIC_URL", "hub.example.com", "http"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path, variable, value, says
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as error:
        load_settings()

    message = str(error.value)
    assert message.startswith(f"{variable}: ")
    assert says in message
    assert "\n" not in message


def test_production_without_a_secret_key_does_not_start(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNIHUB_ENVIRONMENT", "production")

    with pytest.raises(
        SettingsError, match=r"^OMNIHUB_SECRET_KEY: required when OMNIHUB_ENVIRONMENT=production$"
    ):
        load_settings()
