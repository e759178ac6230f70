"""Outbound campaigns: segments, content, four-eyes approval, preview, sending, unsubscribe.

segments     a saved filter over customers, its live count, its members in pages
content      Jinja2 templates per language, checked at save, compiled once, sandboxed
approval     the state machine: draft → pending approval → approved → sending → done
preview      samples and the gate's exclusions by reason, before anything is sent
messages     a recipient's outbox row and history entry, and the outbound built from it
sending      the campaign sender: one holder, pages into the outbox, workers per connection
handover     the exactly-once commit point per message, and outcomes in group commits
progress     counts of a campaign's messages by outcome
unsubscribe  signed one-click links (RFC 8058) and what they do
job          `omnihub serve`'s background job that runs campaigns nobody holds
command      `omnihub campaign send ID`, with a progress bar
"""
