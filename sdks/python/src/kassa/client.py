"""The client of one app: typed, signed requests to both of kassa's APIs; answers believed
only once verified; a timeout on every attempt and safe retries (an identical create is
replayed by kassa, never doubled)."""

import json
import time

import httpx

from .canonical import canonical_of_fields
from .errors import ApiError, MalformedError, TransportError
from .models import (CollectCreated, CollectOrder, PixCreated, PixOrder, SettlementReport,
                     minor_to_amount)
from .verify import verify_answer

MAX_ANSWER_BYTES = 1024 * 1024
MAX_PAUSE_S = 10.0
_RETRY_STATUSES = (429, 500, 502, 503, 504)


class Client:
    """A client of app ``app_id`` at ``base_url``, signing with the merchant's ``signing_key``
    and believing only what ``platform_key`` (``kassa keys platform``) signed."""

    def __init__(self, base_url, app_id, signing_key, platform_key, *, timeout_s=10.0,
                 max_retries=2, first_pause_s=0.25, transport=None):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("the base URL must be http(s)://…")
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._key = signing_key
        self._platform = platform_key
        self._max_retries = max_retries
        self._first_pause_s = first_pause_s
        self._http = httpx.Client(timeout=timeout_s, follow_redirects=False,
                                  transport=transport)

    def close(self):
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # collect (USD, EUR)

    def apply(self, currency, *, order_id, amount_minor, pay_type, in_bank_code, name, phone,
              email, partner_user_id, call_back_url, call_back_fail_url, notify_url=None,
              country=None, subject=None, body=None):
        """Creates a collect order; returns :class:`CollectCreated`. The identical request
        again returns the first answer; other fields under a used ``order_id`` raise
        :class:`ApiError` ``50000001``."""
        fields = {
            "appId": self.app_id, "orderId": order_id, "name": name, "phone": phone,
            "email": email, "amount": minor_to_amount(amount_minor), "payType": pay_type,
            "inBankCode": in_bank_code, "callBackUrl": call_back_url,
            "callBackFailUrl": call_back_fail_url, "partnerUserId": partner_user_id,
            "notifyUrl": notify_url, "country": country, "subject": subject, "body": body,
        }
        return CollectCreated.from_data(self._collect(currency, "apply", fields))

    def query(self, currency, order_id, order_no=None):
        """A collect order: :class:`CollectOrder`."""
        fields = {"appId": self.app_id, "orderId": order_id, "orderNo": order_no}
        return CollectOrder.from_data(self._collect(currency, "query", fields))

    def report(self, currency, date, after=None):
        """One page of a day's settlement report (``date`` ``yyyy-MM-dd``)."""
        fields = {"appId": self.app_id, "date": date, "after": after}
        return SettlementReport.from_data(self._collect(currency, "report", fields))

    # pix (BRL)

    def pix_init_collect(self, *, user_order_number, submit_amount_minor, notify_url=None):
        """Creates a PIX order: :class:`PixCreated` with its BR Code."""
        fields = {"userOrderNumber": user_order_number,
                  "submitAmount": minor_to_amount(submit_amount_minor),
                  "paymentType": "PIX", "currencyType": "BRL", "notifyUrl": notify_url}
        return PixCreated.from_data(self._pix("/accountProxyCollect/initCollect", fields))

    def pix_query(self, user_order_number):
        """A PIX order: :class:`PixOrder`."""
        fields = {"userOrderNumber": user_order_number}
        return PixOrder.from_data(self._pix("/proxyCollectQuery/query", fields))

    def pix_report(self, date, after=None):
        return SettlementReport.from_data(
            self._pix("/proxyCollectQuery/report", {"date": date, "after": after}))

    # the wire

    def _collect(self, currency, operation, fields):
        if currency.upper() not in ("USD", "EUR"):
            raise ValueError("collect orders are USD or EUR; BRL orders are PIX orders")
        fields = {k: v for k, v in fields.items() if v is not None}
        fields["sign"] = self._key.sign(canonical_of_fields(fields))
        path = f"/{currency.lower()}/collect/{operation}"
        status, headers, text = self._post(path, json.dumps(fields), {})
        return verify_answer("collect", status, text, self._platform, self.app_id,
                             headers=headers)

    def _pix(self, path, fields):
        fields = {k: v for k, v in fields.items() if v is not None}
        headers = {"X-App-Id": str(self.app_id),
                   "X-Sign": self._key.sign(canonical_of_fields(fields))}
        status, answer_headers, text = self._post(path, json.dumps(fields), headers)
        return verify_answer("pix", status, text, self._platform, self.app_id,
                             x_sign=answer_headers.get("x-sign"), headers=answer_headers)

    def _post(self, path, body, headers):
        pause = self._first_pause_s
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                status, answer_headers, text = self._post_once(path, body, headers)
            except TransportError:
                if last:
                    raise
                time.sleep(pause)
            else:
                if status not in _RETRY_STATUSES or last:
                    return status, answer_headers, text
                asked = answer_headers.get("retry-after", "")
                time.sleep(min(int(asked) if asked.isdigit() else pause, MAX_PAUSE_S))
            pause = min(pause * 2, MAX_PAUSE_S)
        raise AssertionError("unreachable")

    def _post_once(self, path, body, headers):
        request_headers = {"Content-Type": "application/json", **headers}
        try:
            with self._http.stream("POST", self.base_url + path, content=body.encode("utf-8"),
                                   headers=request_headers) as response:
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise MalformedError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
                    chunks.append(chunk)
                answer_headers = {k.lower(): v for k, v in response.headers.items()}
                try:
                    text = b"".join(chunks).decode("utf-8")
                except UnicodeDecodeError:
                    raise MalformedError("the answer is not UTF-8") from None
                return response.status_code, answer_headers, text
        except httpx.TimeoutException as error:
            raise TransportError(f"kassa did not answer in time: {error}") from None
        except httpx.TransportError as error:
            raise TransportError(f"cannot reach kassa: {error}") from None


__all__ = ["Client", "ApiError"]
