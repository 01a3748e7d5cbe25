"""End to end against a real ``kassa serve --demo``: create, pay through the sandbox, query,
receive and verify the callback — for both APIs. The server and its settings come from the
environment (KASSA_E2E_*), set by kassa's test suite (crates/kassa/tests/sdks.rs)."""

import http.server
import os
import queue
import subprocess
import threading
import time
import uuid

import pytest

from kassa import (PIX_SUCCEEDED, SUCCEEDED, ApiError, CallbackVerifier, Client, SigningKey,
                   VerifyingKey, WrongAppError, brcode)

ENV = os.environ
pytestmark = pytest.mark.skipif(
    "KASSA_E2E_URL" not in ENV, reason="KASSA_E2E_URL is not set: no kassa server to talk to")


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers every callback ``success`` and hands it to the test."""

    received = queue.Queue()

    def do_POST(self):
        length = min(int(self.headers.get("Content-Length", "0")), 64 * 1024)
        body = self.rfile.read(length)
        self.received.put(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/notify"
    server.shutdown()


def client(app_id):
    return Client(ENV["KASSA_E2E_URL"], app_id,
                  SigningKey.from_file(ENV["KASSA_E2E_MERCHANT_KEY"]),
                  VerifyingKey.from_file(ENV["KASSA_E2E_PLATFORM_KEY"]), timeout_s=10)


def pay(order_no):
    subprocess.run([ENV["KASSA_E2E_KASSA"], "trigger", order_no, "--outcome", "paid",
                    "--database-url", ENV["KASSA_E2E_DATABASE_URL"]],
                   check=True, capture_output=True, timeout=30)


def next_callback(order_no):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        headers, body = Receiver.received.get(timeout=deadline - time.monotonic())
        if order_no.encode() in body:
            return headers, body
    raise AssertionError(f"no callback for {order_no} within 30 s")


def test_collect(receiver):
    app_id = int(ENV["KASSA_E2E_COLLECT_APP_ID"])
    order_id = f"py-{uuid.uuid4().hex[:12]}"
    order = dict(order_id=order_id, amount_minor=2500, pay_type="CASHIER",
                 in_bank_code="CASHIER", country="000", name="Jane Doe",
                 phone="+31612345678", email="jane@example.com", partner_user_id="py-user",
                 call_back_url="https://shop.example/paid",
                 call_back_fail_url="https://shop.example/failed", notify_url=receiver)
    with client(app_id) as kassa:
        created = kassa.apply("EUR", **order)
        assert len(created.order_no) == 16 and created.pay_url.startswith(ENV["KASSA_E2E_URL"])
        assert kassa.apply("EUR", **order) == created, "an identical create is replayed"
        with pytest.raises(ApiError) as refused:
            kassa.apply("EUR", **{**order, "amount_minor": 2600})
        assert (refused.value.code, refused.value.http_status) == ("50000001", 409)
        assert kassa.query("EUR", order_id).status == 0
        pay(created.order_no)
        paid = kassa.query("EUR", order_id, created.order_no)
        assert (paid.status, paid.actual_amount_minor) == (SUCCEEDED, 2500)
        assert paid.pay_time

    headers, body = next_callback(created.order_no)
    verifier = CallbackVerifier(VerifyingKey.from_file(ENV["KASSA_E2E_PLATFORM_KEY"]), app_id,
                                ENV["KASSA_E2E_COLLECT_SECRET"])
    callback = verifier.verify(headers, body)
    assert callback.dialect == "collect" and callback.order.status == SUCCEEDED
    assert callback.order.order_id == order_id and callback.webhook_id
    with pytest.raises(WrongAppError):
        CallbackVerifier(verifier.platform_key, app_id + 1000).verify(headers, body)


def test_pix(receiver):
    app_id = int(ENV["KASSA_E2E_PIX_APP_ID"])
    number = f"py-{uuid.uuid4().hex[:12]}"
    with client(app_id) as kassa:
        created = kassa.pix_init_collect(user_order_number=number, submit_amount_minor=1234,
                                         notify_url=receiver)
        fields = brcode.decode(created.qr_code)
        assert fields["54"] == "12.34" and fields["62"]["05"] == created.order_no
        with pytest.raises(ApiError) as refused:
            kassa.pix_init_collect(user_order_number="py-x", submit_amount_minor=0)
        assert refused.value.code == "3002"
        pay(created.order_no)
        paid = kassa.pix_query(number)
        assert (paid.order_state, paid.arrival_amount_minor) == (PIX_SUCCEEDED, 1234)

    headers, body = next_callback(created.order_no)
    callback = CallbackVerifier(VerifyingKey.from_file(ENV["KASSA_E2E_PLATFORM_KEY"]), app_id,
                                ENV["KASSA_E2E_PIX_SECRET"]).verify(headers, body)
    assert callback.dialect == "pix" and callback.order.order_state == PIX_SUCCEEDED
    assert callback.order.serial_no == number
