"""Each masking strategy on the values the city holds."""

from __future__ import annotations

import pytest

from gateway.privacy import mask
from gateway.privacy._masking import recipient_key

KEY = recipient_key(b"test-master", "parking-app")


@pytest.mark.parametrize(
    ("value", "strategy", "category", "expected"),
    [
        ("amelie@example.org", "partial", "user.contact.email", "a***@example.org"),
        ("+33 6 12 34 56 78", "partial", "user.contact.phone_number", "** ** ** ** 78"),
        ("Amélie Poulain", "partial", "user.name", "A***"),
        (42, "partial", "user.demographic", None),
        ("12 Rue Lepic, 75018 Paris", "coarsen", "user.contact.address", "75018 Paris"),
        ("2026-11-25T14:03:59+01:00", "coarsen", "user.behavior", "2026-11-25"),
        (48.886213, "coarsen", "user.location.precise", 48.89),
        (
            {"__typename": "GeoPoint", "latitude": 48.886213, "longitude": 2.334127, "label": "home"},
            "coarsen",
            "user.location.precise",
            {"__typename": "GeoPoint", "latitude": 48.89, "longitude": 2.33, "label": None},
        ),
        (37, "coarsen", "user.demographic.age_range", 30),
        ("free text", "coarsen", "user.content", None),
        ("anything", "null", "user.name", None),
        ("anything", "unknown-strategy", "user.name", None),
    ],
)
def test_strategies(value, strategy, category, expected):
    assert mask(value, strategy, category, KEY) == expected


def test_pseudonyms_are_keyed_per_recipient():
    first = mask("AB-123-CD", "pseudonymise", "user.unique_id", KEY)
    assert first.startswith("pse_") and "AB" not in first
    assert mask("AB-123-CD", "pseudonymise", "user.unique_id", KEY) == first
    assert mask("AB-123-CD", "pseudonymise", "user.unique_id", recipient_key(b"test-master", "stats-portal")) != first
    assert mask("EF-456-GH", "pseudonymise", "user.unique_id", KEY) != first
