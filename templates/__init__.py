"""Jinja2 templates: console pages, the web form, the chat widget, message templates.

They ship inside the wheel; code finds them through `TEMPLATE_DIR`.
"""

from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent
