"""Masking strategies for withheld personal values. Each returns a value safe to disclose.

- null: nothing;
- partial: e-mail `j***@example.org`, phone `** ** ** ** 12`, other text its first letter;
- coarsen: a time to its day, a coordinate to ~1 km (2 decimals), a latitude/longitude object
  likewise, a postal address to its postcode and town, a whole number to its tens;
- pseudonymise: a keyed hash of a text or identifier, the key derived per recipient, so two
  recipients cannot join on it.
Anything a strategy does not know how to mask becomes null: a strategy never turns a value into
one of another shape (an object into a string). Which strategies a field's type can take is
checked when the policy is applied (PRIVACY_STRATEGY_UNFIT); this is the last line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import orjson

_EMAIL = re.compile(r"^([^@\s])[^@\s]*@([^@\s]+)$")
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]\d{2}:\d{2}")
_POSTCODE = re.compile(r"\b(\d{5})\b\s*(.*)$")
_COORDINATES = ("latitude", "longitude", "lat", "lng", "lon")


def partial(value: Any, category: str) -> Any:
    if not isinstance(value, str) or not value:
        return None
    email = _EMAIL.match(value)
    if email:
        return f"{email[1]}***@{email[2]}"
    if "phone" in category:
        digits = [c for c in value if c.isdigit()]
        if len(digits) < 4:
            return None
        return "** ** ** ** " + "".join(digits[-2:])
    return value[0] + "***"


def coarsen(value: Any, category: str) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, int):
        return value - value % 10
    if isinstance(value, str):
        moment = _DATETIME.match(value)
        if moment:
            return moment[1]
        postcode = _POSTCODE.search(value)
        if postcode and ("address" in category or "location" in category):
            return f"{postcode[1]} {postcode[2]}".strip()
        return None
    if isinstance(value, dict):
        if not any(isinstance(inner, float) and name.lower() in _COORDINATES for name, inner in value.items()):
            return None  # not a point: nothing to coarsen it to
        coarse = {}
        for name, inner in value.items():
            if name == "__typename":
                coarse[name] = inner
            elif isinstance(inner, float) and name.lower() in _COORDINATES:
                coarse[name] = round(inner, 2)
            else:
                coarse[name] = None
        return coarse
    return None


def pseudonymise(value: Any, recipient_key: bytes) -> Any:
    if not isinstance(value, str):
        return None  # only a String or an ID becomes a pseudonym: an object or a number would not fit
    digest = hmac.new(recipient_key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS), hashlib.sha256).digest()
    return "pse_" + base64.b32encode(digest[:15]).decode().lower()


def recipient_key(master: bytes, recipient: str) -> bytes:
    return hmac.new(master, b"citygate-pseudonym:" + recipient.encode(), hashlib.sha256).digest()


def mask(value: Any, strategy: str, category: str, key: bytes) -> Any:
    if value is None or strategy == "null":
        return None
    if strategy == "partial":
        return partial(value, category)
    if strategy == "coarsen":
        return coarsen(value, category)
    if strategy == "pseudonymise":
        return pseudonymise(value, key)
    return None
