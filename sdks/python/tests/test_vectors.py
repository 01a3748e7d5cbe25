"""The shared vectors (sdks/vectors/vectors.json): this SDK agrees with kassa on every one."""

import json
import pathlib

import pytest

from kassa import (ApiError, BadSignatureError, CallbackVerifier, MalformedError, SigningKey,
                   VerifyingKey, WrongAppError, brcode, canonical_of_text, verify_answer)

VECTORS = json.loads(
    (pathlib.Path(__file__).resolve().parents[2] / "vectors" / "vectors.json").read_text("utf-8"))
PLATFORM = VerifyingKey(VECTORS["platform_public_key_pem"])


def named(kind):
    return pytest.mark.parametrize("vector", VECTORS[kind], ids=[v["name"] for v in VECTORS[kind]])


def outcome_of(call):
    try:
        return "ok", call()
    except ApiError as error:
        return "api_error", error.code
    except BadSignatureError:
        return "bad_signature", None
    except WrongAppError:
        return "wrong_app", None
    except brcode.CrcMismatchError:
        return "crc_mismatch", None
    except MalformedError:
        return "malformed", None


@named("canonical")
def test_canonical(vector):
    if vector.get("error"):
        with pytest.raises(MalformedError):
            canonical_of_text(vector["json"])
    else:
        assert canonical_of_text(vector["json"])[0] == vector["canonical"]


@pytest.mark.parametrize("vector", VECTORS["signatures"])
def test_signatures(vector):
    key = SigningKey(VECTORS["merchant_private_key_pem"])
    assert key.sign(vector["canonical"]) == vector["sign"]
    VerifyingKey(VECTORS["merchant_public_key_pem"]).verify(vector["canonical"], vector["sign"])
    with pytest.raises(BadSignatureError):
        VerifyingKey(VECTORS["merchant_public_key_pem"]).verify(vector["canonical"] + "x",
                                                                vector["sign"])


@named("answers")
def test_answers(vector):
    outcome, value = outcome_of(lambda: verify_answer(
        vector["dialect"], vector["http_status"], vector["body"], PLATFORM, vector["app_id"],
        x_sign=vector.get("x_sign")))
    assert outcome == vector["outcome"]
    if outcome == "ok":
        assert value == vector["data"]
    if outcome == "api_error":
        assert value == vector["code"]


@named("callbacks")
def test_callbacks(vector):
    verifier = CallbackVerifier(PLATFORM, vector["app_id"], VECTORS["webhook_secret"])
    outcome, callback = outcome_of(lambda: verifier.verify(
        vector["headers"], vector["body"].encode("utf-8"), now_s=vector["now_s"]))
    assert outcome == vector["outcome"]
    if outcome == "ok":
        assert callback.dialect == vector["dialect"]
        assert callback.data == vector["data"]
        assert callback.webhook_id == vector["headers"]["webhook-id"]


@named("brcodes")
def test_brcodes(vector):
    outcome, fields = outcome_of(lambda: brcode.decode(vector["code"]))
    assert outcome == vector["outcome"]
    if outcome == "ok":
        assert fields == vector["fields"]


def test_signing_keys_never_show_their_material():
    assert "PRIVATE" not in repr(SigningKey(VECTORS["merchant_private_key_pem"]))
