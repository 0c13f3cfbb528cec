"""The world's data: a handful of residents, districts, spots and jobs. Tests may mutate it."""

from __future__ import annotations

import copy

_INITIAL = {
    "residents": {
        "r1": {
            "id": "r1",
            "name": "Amélie Poulain",
            "email": "amelie@example.org",
            "district": "75118",
            "nickname": "Ami",
        },
        "r2": {"id": "r2", "name": "Jean Valjean", "email": "jean@example.org", "district": "75105", "nickname": "JV"},
        "r3": {"id": "r3", "name": "Cosette Fauchelevent", "email": None, "district": "75105", "nickname": "Co"},
        "r4": {
            "id": "r4",
            "name": "Gavroche Thénardier",
            "email": "gavroche@example.org",
            "district": "75111",
            "nickname": "Gav",
        },
    },
    "districts": {
        "75105": {"code": "75105", "name": "Panthéon", "population": 56841},
        "75111": {"code": "75111", "name": "Popincourt", "population": 142583},
        "75118": {"code": "75118", "name": "Buttes-Montmartre", "population": 191135},
    },
    "spots": {
        "s1": {"id": "s1", "label": "Rue Mouffetard 12", "district": "75105", "price": 2.5, "free": True},
        "s2": {"id": "s2", "label": "Rue Oberkampf 40", "district": "75111", "price": 3.0, "free": False},
        "s3": {"id": "s3", "label": "Rue Lepic 7", "district": "75118", "price": 2.0, "free": True},
    },
    "bookings": [
        {"id": "b1", "resident": "r1", "spot": "s3", "hours": 2, "plate": "AB-123-CD"},
        {"id": "b2", "resident": "r2", "spot": "s1", "hours": 1, "plate": "EF-456-GH"},
    ],
    "vehicles": {
        "AB-123-CD": {"plate": "AB-123-CD", "kind": "car"},
        "EF-456-GH": {"plate": "EF-456-GH", "kind": "van"},
    },
    "jobs": {
        "j1": {
            "id": "j1",
            "title": "Water the plants",
            "kind": "WATERING",
            "reward": 10.0,
            "postedBy": "r1",
            "takenBy": "r2",
        },
        "j2": {
            "id": "j2",
            "title": "Walk the dog",
            "kind": "PET_CARE",
            "reward": 15.0,
            "postedBy": "r2",
            "takenBy": None,
        },
        "j3": {"id": "j3", "title": "Fix a shelf", "kind": "DIY", "reward": 25.0, "postedBy": "r1", "takenBy": "r4"},
    },
    "announcements": [{"id": "a1", "text": "Street market on Sunday"}],
    "ratings": {"s1": 4.5, "s2": 3.0, "s3": 4.8, "g1": 4.9},
    "garages": {"g1": {"id": "g1", "name": "Parking Saint-Michel", "levels": 4}},
}

world: dict = copy.deepcopy(_INITIAL)


def reset() -> None:
    world.clear()
    world.update(copy.deepcopy(_INITIAL))
