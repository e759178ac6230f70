"""The voice channel through Twilio: signed call webhooks, screen pop, TwiML routing."""
