"""kassa: a merchant's client of the kassa payment gateway.

- :class:`Client` — create, query and report orders of both APIs (collect: USD, EUR; pix: BRL),
  signed with the merchant's key, answers verified with the platform key.
- :class:`CallbackVerifier` — check a callback's RSA and Standard Webhooks signatures and its
  ``appId`` before acting on it.
- :mod:`kassa.brcode` — decode a PIX BR Code and check its CRC.
"""

from . import brcode
from .canonical import canonical_of_fields, canonical_of_text
from .client import Client
from .errors import (ApiError, BadSignatureError, KassaError, MalformedError, TransportError,
                     WrongAppError)
from .keys import SigningKey, VerifyingKey
from .models import (EXCEPTION, FAILED, IN_PROGRESS, NOT_STARTED, PIX_FAILED, PIX_PROCESSING,
                     PIX_SUCCEEDED, SUCCEEDED, Callback, CollectCreated, CollectOrder,
                     PixCreated, PixOrder, SettlementReport, amount_to_minor, minor_to_amount)
from .verify import CallbackVerifier, verify_answer, verify_webhook, webhook_signature

__all__ = [
    "ApiError", "BadSignatureError", "Callback", "CallbackVerifier", "Client", "CollectCreated",
    "CollectOrder", "EXCEPTION", "FAILED", "IN_PROGRESS", "KassaError", "MalformedError",
    "NOT_STARTED", "PIX_FAILED", "PIX_PROCESSING", "PIX_SUCCEEDED", "PixCreated", "PixOrder",
    "SUCCEEDED", "SettlementReport", "SigningKey", "TransportError", "VerifyingKey",
    "WrongAppError", "amount_to_minor", "brcode", "canonical_of_fields", "canonical_of_text",
    "minor_to_amount", "verify_answer", "verify_webhook", "webhook_signature",
]
