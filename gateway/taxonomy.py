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


@cache
def _parents() -> dict[str, str | None]:
    from fideslang import DEFAULT_TAXONOMY

    return {category.fides_key: category.parent_key for category in DEFAULT_TAXONOMY.data_category}


def common_category(first: str, second: str) -> str | None:
    """The nearest category covering both (`user.contact.email` and `user.financial` -> `user`):
    where two annotations meet, the broader category is the stricter, as fewer consents and legal
    bases cover it. None when they share no ancestor (or one is not in the taxonomy)."""
    if first == second:
        return first
    parents = _parents()
    lineage = []
    category: str | None = first
    while category is not None:
        lineage.append(category)
        category = parents.get(category)
    ancestors = set()
    category = second
    while category is not None:
        ancestors.add(category)
        category = parents.get(category)
    return next((c for c in lineage if c in ancestors and c in parents), None)
