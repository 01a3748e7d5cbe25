"""Schemathesis hooks for kassa: sign every generated request like a merchant would.

Without a valid signature every request stops at authentication; with one, the fuzzer reaches
kassa's field validation and order rules. Only what a test merchant controls is changed: the
app id (when the generated one is a valid-looking id, so negative cases stay negative) and the
signature (only when the generated one is a string and the body is a flat object, which is all
that can be signed). The canonical string is written here independently of kassa's own code.

Settings come from the environment: KASSA_ST_KEY (the merchant's private key, PEM) and
KASSA_ST_APPS (JSON: {"usd": id, "eur": id, "brl": id}).
"""

import base64
import json
import os

import schemathesis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

with open(os.environ["KASSA_ST_KEY"], "rb") as key_file:
    KEY = serialization.load_pem_private_key(key_file.read(), password=None)
APPS = json.loads(os.environ["KASSA_ST_APPS"])


def canonical(body: dict) -> str:
    """Every field but sign, null and "" left out, keys in byte order, key=value joined by &."""
    parts = []
    for key in sorted(body, key=lambda k: k.encode("utf-8")):
        value = body[key]
        if key == "sign" or value is None or value == "":
            continue
        if isinstance(value, str):
            text = value
        else:
            # Numbers and booleans as the JSON text that will be sent.
            text = json.dumps(value)
        parts.append(f"{key}={text}")
    return "&".join(parts)


def sign(text: str) -> str:
    signature = KEY.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def signable(body) -> bool:
    return isinstance(body, dict) and not any(
        isinstance(v, (dict, list)) for v in body.values()
    )


# Page tokens of orders this run created, so the cashier's status endpoint is asked about real
# orders too, not only about tokens that do not exist.
PAGE_TOKENS = []


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    path = case.operation.path
    if path == "/pay/{token}/status":
        token = (case.path_parameters or {}).get("token")
        if PAGE_TOKENS and isinstance(token, str) and len(token) % 2 == 0:
            case.path_parameters["token"] = PAGE_TOKENS[len(token) % len(PAGE_TOKENS)]
    elif path.startswith("/{currency}/collect/"):
        currency = (case.path_parameters or {}).get("currency")
        if not signable(body):
            return
        app_id = body.get("appId")
        if type(app_id) is int and app_id >= 1 and currency in APPS:
            body["appId"] = APPS[currency]
        if isinstance(body.get("sign"), str):
            body["sign"] = sign(canonical(body))
    elif path in ("/accountProxyCollect/initCollect", "/proxyCollectQuery/query"):
        headers = case.headers
        if headers is None or not signable(body):
            return
        app_id = headers.get("X-App-Id")
        if isinstance(app_id, str) and app_id.isascii() and app_id.isdigit() and app_id[0] != "0":
            headers["X-App-Id"] = str(APPS["brl"])
        if isinstance(headers.get("X-Sign"), str):
            headers["X-Sign"] = sign(canonical(body))


STATS_PATH = os.environ.get("KASSA_ST_STATS")


@schemathesis.hook
def after_call(context, case, response):
    """Counts answers per operation and status, so the run can prove that signed requests got
    past authentication (a hook that signed wrongly would see only 401s)."""
    if response.status_code == 200 and case.operation.path.endswith("/collect/apply"):
        pay_url = response.json().get("data", {}).get("payUrl", "")
        PAGE_TOKENS.append(pay_url.rsplit("/", 1)[-1])
    if not STATS_PATH:
        return
    key = f"{case.operation.method.upper()} {case.operation.path} {response.status_code}"
    try:
        with open(STATS_PATH) as f:
            stats = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        stats = {}
    stats[key] = stats.get(key, 0) + 1
    with open(STATS_PATH, "w") as f:
        json.dump(stats, f)
