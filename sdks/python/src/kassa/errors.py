"""The errors of the SDK: what kassa answered (its dialect's code), or why no believable answer
came."""


class KassaError(Exception):
    """Every error of this package."""


class ApiError(KassaError):
    """kassa refused the request: the dialect's ``code`` as text (``"10000005"``, ``"1005"``),
    its ``message``, the HTTP status and the ``Retry-After`` seconds it asked for, if any."""

    def __init__(self, dialect, code, message, http_status, retry_after_s=None):
        super().__init__(f"kassa refused the request: {code} {message} (HTTP {http_status})")
        self.dialect = dialect
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retry_after_s = retry_after_s

    @property
    def family(self):
        """1 format, 2 signature and app, 3 business rule, 4 not found, 5 duplicate, 9 internal."""
        return int(self.code[0]) if self.code[:1].isdigit() else 0

    @property
    def retryable(self):
        return self.http_status in (429, 500, 502, 503, 504)


class TransportError(KassaError):
    """kassa could not be reached, or did not answer in time. A create may have been stored:
    send the identical request again (an idempotent replay) or query the order."""


class BadSignatureError(KassaError):
    """The answer or callback is not signed by the platform key (or the app's webhook secret)."""


class WrongAppError(KassaError):
    """Genuinely signed data about another app than the caller's: never trust it."""


class MalformedError(KassaError):
    """The text is not what the API promises (not JSON, nested, fields missing)."""
