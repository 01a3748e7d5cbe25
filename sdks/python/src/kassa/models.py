"""Typed values of kassa's answers and callbacks. Money is integer minor units (cents)."""

import json
import re
from dataclasses import dataclass, field
from typing import Optional

from .errors import MalformedError

_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?")

#: collect ``status``: 0 not started, 1 in progress, 2 succeeded (final), 3 failed (final),
#: -1 exception (the operator settles it).
NOT_STARTED, IN_PROGRESS, SUCCEEDED, FAILED, EXCEPTION = 0, 1, 2, 3, -1
#: pix ``orderState``: 10 processing, 20 succeeded (final), 30 failed (final).
PIX_PROCESSING, PIX_SUCCEEDED, PIX_FAILED = 10, 20, 30


def amount_to_minor(text):
    """``"25.00"`` → ``2500``."""
    match = _AMOUNT.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise MalformedError(f"not an amount: {text!r}")
    cents = (match.group(2) or "").ljust(2, "0")
    return int(match.group(1)) * 100 + int(cents)


def minor_to_amount(minor):
    """``2500`` → ``"25.00"``."""
    if not isinstance(minor, int) or isinstance(minor, bool) or minor < 0:
        raise ValueError("an amount is a non-negative integer of minor units")
    return f"{minor // 100}.{minor % 100:02d}"


def _get(data, name, kind):
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedError(f"{name} is missing or not a {kind.__name__}")
    return value


@dataclass(frozen=True)
class CollectCreated:
    app_id: int
    order_id: str
    order_no: str
    pay_url: str

    @classmethod
    def from_data(cls, data):
        return cls(_get(data, "appId", int), _get(data, "orderId", str),
                   _get(data, "orderNo", str), _get(data, "payUrl", str))


@dataclass(frozen=True)
class CollectOrder:
    app_id: int
    order_id: str
    order_no: str
    status: int
    amount_minor: int
    actual_amount_minor: int
    fee_minor: int
    pay_time: Optional[str] = None
    error_msg: Optional[str] = None

    @property
    def is_final(self):
        return self.status in (SUCCEEDED, FAILED)

    @classmethod
    def from_data(cls, data):
        status = _get(data, "status", int)
        if status not in (NOT_STARTED, IN_PROGRESS, SUCCEEDED, FAILED, EXCEPTION):
            raise MalformedError(f"unknown status {status}")
        return cls(
            _get(data, "appId", int), _get(data, "orderId", str), _get(data, "orderNo", str),
            status, amount_to_minor(data.get("amount")),
            amount_to_minor(data.get("actualAmount")), amount_to_minor(data.get("fee")),
            data.get("payTime"), data.get("errorMsg"))


@dataclass(frozen=True)
class PixCreated:
    app_id: int
    order_no: str
    url: str
    qr_code: str
    order_state: int
    serial_no: str

    @classmethod
    def from_data(cls, data):
        return cls(_get(data, "appId", int), _get(data, "orderNo", str), _get(data, "url", str),
                   _get(data, "qrCode", str), _get(data, "orderState", int),
                   _get(data, "serialNo", str))


@dataclass(frozen=True)
class PixOrder:
    app_id: int
    serial_no: str
    order_no: str
    order_state: int
    amount_minor: int
    arrival_amount_minor: int
    trans_time: Optional[str] = None
    message: Optional[str] = None

    @property
    def is_final(self):
        return self.order_state in (PIX_SUCCEEDED, PIX_FAILED)

    @classmethod
    def from_data(cls, data):
        state = _get(data, "orderState", int)
        if state not in (PIX_PROCESSING, PIX_SUCCEEDED, PIX_FAILED):
            raise MalformedError(f"unknown orderState {state}")
        return cls(
            _get(data, "appId", int), _get(data, "serialNo", str), _get(data, "orderNo", str),
            state, amount_to_minor(data.get("amount")),
            amount_to_minor(data.get("arrivalAmount")), data.get("transTime"),
            data.get("message"))


@dataclass(frozen=True)
class SettlementReport:
    """One page of a day's settlement report; totals on the first page only."""

    app_id: int
    date: str
    currency: str
    time_zone: str
    lines: str
    orders: Optional[int] = None
    gross_minor: Optional[int] = None
    fee_minor: Optional[int] = None
    net_minor: Optional[int] = None
    methods: Optional[str] = None
    next: Optional[str] = None

    @classmethod
    def from_data(cls, data):
        def minor(name):
            return amount_to_minor(data[name]) if name in data else None

        return cls(
            _get(data, "appId", int), _get(data, "date", str), _get(data, "currency", str),
            _get(data, "timeZone", str), _get(data, "lines", str), data.get("orders"),
            minor("gross"), minor("fee"), minor("net"), data.get("methods"), data.get("next"))


@dataclass(frozen=True)
class Callback:
    """A verified callback: ``dialect`` (``collect`` or ``pix``), the order, and
    ``webhook_id`` — the same on every retry of one callback; deduplicate by it."""

    dialect: str
    order: object
    webhook_id: Optional[str] = None
    data: dict = field(default_factory=dict, repr=False)


def loads(text):
    try:
        return json.loads(text)
    except ValueError as error:
        raise MalformedError(f"not JSON: {error}") from None
