"""Live chat: the customer's websocket and the embeddable widget.

protocol     the JSON frames, error codes and close codes (read this first)
sessions     signed session tokens; each session's numbered, replayable log
connection   one socket: outgoing queue and writer, heartbeats, rate limit
handlers     what each client frame does (store, then acknowledge)
contact      the pre-chat form: the chat id joins the named customer
presence     whether an agent is online
sender       the outbox's sender for channel `chat`
relay        agent typing from the event bus to the sockets
routes       `WS /channels/chat/ws`, `GET /channels/chat/widget.js`
wiring       how `hub/app.py` shares one registry between route and sender
static/      widget.js
"""
