"""BR Codes (EMV QRCPS-MPM, the payload of PIX QR codes): TLV fields — two-digit id, two-digit
length, value — with templates at ids 26–51, 62 and 80–99, starting with ``000201`` and ending
with field 63, a CRC16-CCITT-FALSE of everything before its four upper-case hex digits."""

import re

from .errors import MalformedError

MAX_PAYLOAD_LEN = 512
_CRC_TEXT = re.compile(r"[0-9A-F]{4}")


class CrcMismatchError(MalformedError):
    """The code is well formed but its CRC does not hold: it was mistyped or altered."""


def crc16(data):
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _is_template(field_id):
    return 26 <= field_id <= 51 or field_id == 62 or 80 <= field_id <= 99


def _fields(text, nested):
    fields = {}
    at = 0
    while at < len(text):
        header = text[at:at + 4]
        if len(header) < 4 or not header.isdigit():
            raise MalformedError(f"at position {at}: expected a field id and length")
        field_id, length = int(header[:2]), int(header[2:])
        value = text[at + 4:at + 4 + length]
        if len(value) < length:
            raise MalformedError(f"field {header[:2]} runs past the end")
        if header[:2] in fields:
            raise MalformedError(f"field {header[:2]} appears twice")
        if _is_template(field_id):
            if nested:
                raise MalformedError(f"field {header[:2]} nests a template in a template")
            fields[header[:2]] = _fields(value, True)
        else:
            fields[header[:2]] = value
        at += 4 + length
    return fields


def decode(code):
    """The fields of a BR Code (templates as nested ``dict``s, 63 left out). Raises
    :class:`MalformedError`, or :class:`CrcMismatchError` when only the CRC is wrong."""
    if not code or len(code) > MAX_PAYLOAD_LEN:
        raise MalformedError("a BR Code has 1 to 512 characters")
    if any(not 0x20 <= ord(c) < 0x7F for c in code):
        raise MalformedError("a BR Code is printable ASCII")
    fields = _fields(code, False)
    if fields.get("00") != "01" or next(iter(fields)) != "00":
        raise MalformedError('a BR Code starts with field 00 = "01"')
    if list(fields)[-1] != "63" or not _CRC_TEXT.fullmatch(str(fields["63"])):
        raise MalformedError("a BR Code ends with field 63 of four upper-case hex digits")
    stated = fields.pop("63")
    computed = f"{crc16(code[:-4].encode('ascii')):04X}"
    if stated != computed:
        raise CrcMismatchError(f"the CRC is {stated} but the code's CRC is {computed}")
    return fields
