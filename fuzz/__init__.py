"""Fuzz targets for the hub's parsers of hostile wire traffic (issue 11).

Each target takes one byte string, feeds it to a parser exactly as the wire
would (raw mail to `parse_mail`, a form body through Starlette's own form
parser to the Twilio webhook parsers, a request body to the web form, a text
frame to the chat protocol) and checks the parser's contract:

- it raises nothing but the errors it documents (`Refusal` below lists them);
- what it hands on to the hub is storable: no NUL or lone surrogate in any
  string (PostgreSQL refuses NUL; a surrogate cannot be encoded), an external
  id of 1 to 500 characters, a subject of at most 500;
- for mail, additionally: a reply that re-serialises the parsed mail carries
  only the headers the hub set, and the sanitised HTML has no active content.

A broken invariant raises `InvariantError`; anything else that escapes is a
crash. `python -m fuzz --seconds N` runs every target under atheris
(libFuzzer) for N seconds each; see `fuzz/__main__.py`.
"""
