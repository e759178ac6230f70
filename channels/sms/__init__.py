"""The SMS channel through Twilio: signed webhooks in, the outbox's SMS sender out."""
