"""An erased address that comes back in a CSV import: imported, never marketed to.

The CSV usually comes from the ERP, which may still hold a person who asked
the hub to erase them, or who became a customer again since. Refusing the row
would lose a real customer's service contact; importing it as if nothing had
happened would market to someone who objected. So the row is imported, and
each suppressed address in it gets a block of scope `marketing` (reason
`legal`) on the spot: the card shows why no campaign reaches it, the import
report lists the line, and the block holds even if the suppression's key
(SECRET_KEY) changes. The gate refuses marketing to a suppressed address in any
case (`suppressed`); the import grants no consent either way.
"""

from __future__ import annotations

from hub.blocks import do_add_block
from hub.context import Work
from hub.privacy.suppression import find_suppressed

NOTE = "erased on request earlier; imported again: no marketing"


async def do_block_suppressed(
    work: Work, key: bytes, addresses: list[tuple[str, str]], region: str
) -> list[str]:
    """Block marketing to each suppressed (kind, address); returns the kinds blocked."""
    found = await find_suppressed(work.session, addresses, key=key)
    for kind, address in sorted(found):
        await do_add_block(work, None, kind, address, "legal", region, scope="marketing", note=NOTE)
    return sorted(kind for kind, _ in found)
