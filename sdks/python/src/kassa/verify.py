"""Believing kassa: an answer or callback is trusted only once the platform key's signature
over its canonical string verifies, the Standard Webhooks signature by the app's secret holds
(callbacks, when the receiver has the secret), and its ``appId`` is the receiver's app."""

import base64
import binascii
import hashlib
import hmac
import json
import time

from .canonical import canonical_of_text
from .errors import ApiError, BadSignatureError, MalformedError, WrongAppError
from .models import Callback, CollectOrder, PixOrder, loads

COLLECT_OK = "00000000"
WEBHOOK_TOLERANCE_S = 300
MAX_WEBHOOK_SIGNATURES = 8


def verify_signed(data_text, platform_key, app_id, x_sign=None):
    """Checks signed data (``sign`` inside it, or ``x_sign`` from the header) and its
    ``appId``; returns it as a ``dict``."""
    canonical, sign = canonical_of_text(data_text)
    signature = x_sign if x_sign is not None else sign
    if not signature:
        raise BadSignatureError("the data carries no signature")
    platform_key.verify(canonical, signature)
    data = loads(data_text)
    named = data.get("appId")
    if not isinstance(named, int) or isinstance(named, bool) or named != app_id:
        raise WrongAppError(f"the signed data belongs to app {named!r}, not to app {app_id}")
    return data


_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def _skip(text, at):
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def raw_fields(text):
    """A JSON object's top-level fields, each value as its exact text (signatures cover the
    text as written, so ``data`` is verified as it came, not as re-serialised)."""
    fields = {}
    at = _skip(text, 0)
    if text[at:at + 1] != "{":
        raise MalformedError("the answer is not a JSON object")
    at = _skip(text, at + 1)
    if text[at:at + 1] == "}":
        return fields
    try:
        while True:
            key, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if not isinstance(key, str) or text[at:at + 1] != ":":
                raise MalformedError("the answer is not a JSON object")
            begin = _skip(text, at + 1)
            _, at = _DECODER.raw_decode(text, begin)
            fields[key] = text[begin:at]
            at = _skip(text, at)
            if text[at:at + 1] == "}":
                return fields
            if text[at:at + 1] != ",":
                raise MalformedError("the answer is not a JSON object")
            at = _skip(text, at + 1)
    except ValueError as error:
        raise MalformedError(f"not JSON: {error}") from None


def _retry_after(headers):
    value = (headers or {}).get("retry-after")
    return int(value) if value and value.strip().isdigit() else None


def verify_answer(dialect, http_status, body, platform_key, app_id, x_sign=None, headers=None):
    """An answer's verified ``data`` as a ``dict``; a refusal raises :class:`ApiError`."""
    envelope = loads(body)
    if not isinstance(envelope, dict):
        raise MalformedError("the answer is not a JSON object")
    if dialect == "collect":
        if envelope.get("status") != "1" or envelope.get("error") != COLLECT_OK:
            raise ApiError("collect", str(envelope.get("error")), envelope.get("msg", ""),
                           http_status, _retry_after(headers))
    elif dialect == "pix":
        code = envelope.get("code")
        if code != 0:
            raise ApiError("pix", str(code), envelope.get("msg", ""), http_status,
                           _retry_after(headers))
        if not x_sign:
            raise BadSignatureError("the answer has no X-Sign header")
    else:
        raise ValueError("dialect is 'collect' or 'pix'")
    if not isinstance(envelope.get("data"), dict):
        raise MalformedError("no data in a successful answer")
    return verify_signed(raw_fields(body)["data"], platform_key, app_id, x_sign if dialect == "pix" else None)


def webhook_signature(secret, webhook_id, timestamp, body):
    """The ``v1,…`` signature of one delivery (Standard Webhooks)."""
    key = _secret_key(secret)
    message = f"{webhook_id}.{timestamp}.".encode("utf-8") + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _secret_key(secret):
    if not secret.startswith("whsec_"):
        raise BadSignatureError("a webhook secret is whsec_ followed by a base64 key")
    try:
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    except binascii.Error:
        raise BadSignatureError("a webhook secret is whsec_ followed by a base64 key") from None


def verify_webhook(secret, headers, body, now_s=None):
    """Checks ``webhook-signature`` (any of its space-separated ``v1,`` entries) and that
    ``webhook-timestamp`` is within five minutes of now."""
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (webhook_id and timestamp and signatures):
        raise BadSignatureError("the Standard Webhooks headers are missing")
    if not timestamp.isdigit():
        raise BadSignatureError("webhook-timestamp is not a number of seconds")
    now_s = int(time.time()) if now_s is None else now_s
    if abs(now_s - int(timestamp)) > WEBHOOK_TOLERANCE_S:
        raise BadSignatureError("webhook-timestamp is more than five minutes from now")
    expected = webhook_signature(secret, webhook_id, timestamp, body)
    for entry in signatures.split(" ")[:MAX_WEBHOOK_SIGNATURES]:
        if hmac.compare_digest(entry.encode(), expected.encode()):
            return
    raise BadSignatureError("no v1 signature in webhook-signature matches the secret")


class CallbackVerifier:
    """Checks the callbacks of one app. ``webhook_secret`` (``whsec_…``) also requires the
    Standard Webhooks signature, which binds a callback to the app and stops replays."""

    def __init__(self, platform_key, app_id, webhook_secret=None):
        self.platform_key = platform_key
        self.app_id = app_id
        self.webhook_secret = webhook_secret

    def verify(self, headers, body, now_s=None):
        """``headers``: any mapping (names matched without regard to case); ``body``: bytes
        as received. Returns a :class:`Callback`."""
        lower = {str(k).lower(): v for k, v in dict(headers).items()}
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if self.webhook_secret is not None:
            verify_webhook(self.webhook_secret, lower, raw, now_s)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedError("the callback is not UTF-8") from None
        x_sign = lower.get("x-sign")
        data = verify_signed(text, self.platform_key, self.app_id, x_sign)
        if x_sign is not None:
            return Callback("pix", PixOrder.from_data(data), lower.get("webhook-id"), data)
        return Callback("collect", CollectOrder.from_data(data), lower.get("webhook-id"), data)
