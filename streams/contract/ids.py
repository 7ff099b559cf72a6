"""What an id typed in a file may hold (`promo users import`, `promo campaigns import`).

The contract's rule for an id is 1-64 code points of any kind (docs/CONTRACT.md). A file line adds
what a typed id never holds: a control character, and for a user id whitespace. A line with one is a typo or a CSV
row, not an id, and imported it would name nobody the events name. Imports nothing of ours.
"""

from __future__ import annotations

import unicodedata

MAX_ID = 64  # code points, as parse_event checks user_id and campaign_id


def has_control(text: str) -> bool:
    """`text` holds a control character: a line break, a tab, a bell (never in an id or a name)."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def check_id(value: str, what: str, spaces: bool = False) -> str | None:
    """Why `value` cannot be the `what` (user_id, campaign_id) of a file line, or None. `spaces`: a
    space inside is allowed (a campaign id as the events carry it, `双11 主会场`; the line's cells are
    stripped), a control character never."""
    if not value:
        return "empty"
    if len(value) > MAX_ID:
        return f"{len(value)} characters; a {what} has 1-{MAX_ID}"
    if not spaces and any(c.isspace() for c in value):
        return "contains whitespace"
    if has_control(value):
        return "contains a control character"
    return None
