"""Text a client sends: controls (Cc), invisible format characters (Cf) and
lone surrogates (Cs) never belong in a name, code or filter. A NUL cuts a
SQLite LIKE pattern short and is refused by PostgreSQL's text type."""

from __future__ import annotations

import unicodedata

INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def first_invisible(text: str) -> str | None:
    """The first control, format or surrogate character of ``text``, if any."""
    return next((c for c in text if unicodedata.category(c) in INVISIBLE_CATEGORIES), None)


def visible(text: str) -> str:
    """``text`` without its control, format and surrogate characters."""
    return "".join(c for c in text if unicodedata.category(c) not in INVISIBLE_CATEGORIES)
