"""Data categories: the Fides taxonomy (fideslang), the one vocabulary of personal data."""

from __future__ import annotations

from functools import cache


@cache
def fides_categories() -> frozenset[str]:
    from fideslang import DEFAULT_TAXONOMY

    return frozenset(category.fides_key for category in DEFAULT_TAXONOMY.data_category)


def category_covers(granted: str, asked: str) -> bool:
    """A consent or rule for `user.contact` covers `user.contact.email` (the taxonomy is a tree)."""
    return asked == granted or asked.startswith(granted + ".")
