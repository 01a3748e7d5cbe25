"""The canonical string of a flat JSON object: the exact text that is signed.

Every top-level field but ``sign``; ``null`` and ``""`` left out; keys sorted by their UTF-8
bytes; ``key=value`` joined by ``&``, strings as their raw text, numbers and booleans as the
literal written in the JSON text. Nested values and duplicate keys are refused: they would let
one signature stand for two messages.
"""

import json

from .errors import MalformedError

SIGN_FIELD = "sign"


class _Number(str):
    """A number's literal exactly as written in the JSON text."""


class _Object(list):
    """An object's fields as (key, value) pairs, in the order written."""


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _pairs(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise MalformedError(f"field {key} appears more than once")
        seen.add(key)
    return _Object(pairs)


def parse_flat(text):
    """The fields of a received object, in order, with numbers as their literal text."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_refuse_constant,
        )
    except MalformedError:
        raise
    except ValueError as error:
        raise MalformedError(f"not valid JSON: {error}") from None
    if not isinstance(value, _Object):
        raise MalformedError("the body must be a JSON object")
    for key, field in value:
        if isinstance(field, list):
            raise MalformedError(f"field {key} must not be an object or an array")
    return value


def _text(value):
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return value or None
    raise MalformedError("a signed field must not be an object or an array")


def _join(pairs):
    parts = []
    for key, value in sorted(pairs, key=lambda pair: pair[0].encode("utf-8")):
        if key == SIGN_FIELD:
            continue
        text = _text(value)
        if text is not None:
            parts.append(f"{key}={text}")
    return "&".join(parts)


def canonical_of_text(text):
    """The canonical string and the ``sign`` of a received JSON text."""
    pairs = parse_flat(text)
    sign = dict(pairs).get(SIGN_FIELD)
    if sign is not None and (isinstance(sign, _Number) or not isinstance(sign, str)):
        raise MalformedError("field sign must be a string")
    return _join(pairs), sign


def canonical_of_fields(fields):
    """The canonical string of fields the caller builds (a ``dict``)."""
    return _join(list(fields.items()))
