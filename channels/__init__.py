"""The channels: protocol edges that turn wire traffic into `hub.Inbound` and send `hub.Outbound`.

They hold no database session: inbound goes through `hub.intake`, outbound
comes from the outbox's dispatcher.
"""
