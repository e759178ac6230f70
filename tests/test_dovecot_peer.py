"""The Dovecot peer itself: a fresh, empty mailbox per user, that takes appended mail."""

from tests.peers.dovecot import Dovecot


def test_each_user_starts_with_an_empty_mailbox_that_takes_appended_mail(dovecot: Dovecot):
    user = dovecot.new_user()
    dovecot.append(user, b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n")

    client = dovecot.client(user)
    try:
        client.select_folder("INBOX")
        assert len(client.search()) == 1
    finally:
        client.logout()
    other = dovecot.client(dovecot.new_user())
    try:
        assert other.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        other.logout()
