"""The e-mail channel: IMAP intake, MIME parsing, threading references, bounces, SMTP sending."""
