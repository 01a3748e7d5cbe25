// The shared vectors (sdks/vectors/vectors.json): this SDK agrees with kassa on every one.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { inspect } from "node:util";
import {
  ApiError,
  BadSignatureError,
  CallbackVerifier,
  canonicalOfText,
  CrcMismatchError,
  decodeBrCode,
  MalformedError,
  SigningKey,
  verifyAnswer,
  VerifyingKey,
  WrongAppError,
} from "../dist/index.js";

const vectors = JSON.parse(readFileSync(new URL("../../vectors/vectors.json", import.meta.url), "utf8"));
const platform = new VerifyingKey(vectors.platform_public_key_pem);

function outcomeOf(call) {
  try {
    return ["ok", call()];
  } catch (error) {
    if (error instanceof ApiError) return ["api_error", error.code];
    if (error instanceof BadSignatureError) return ["bad_signature"];
    if (error instanceof WrongAppError) return ["wrong_app"];
    if (error instanceof CrcMismatchError) return ["crc_mismatch"];
    if (error instanceof MalformedError) return ["malformed"];
    throw error;
  }
}

for (const vector of vectors.canonical) {
  test(`canonical: ${vector.name}`, () => {
    if (vector.error) assert.throws(() => canonicalOfText(vector.json), MalformedError);
    else assert.equal(canonicalOfText(vector.json).canonical, vector.canonical);
  });
}

test("signatures", () => {
  const key = new SigningKey(vectors.merchant_private_key_pem);
  const merchant = new VerifyingKey(vectors.merchant_public_key_pem);
  for (const vector of vectors.signatures) {
    assert.equal(key.sign(vector.canonical), vector.sign);
    merchant.verify(vector.canonical, vector.sign);
    assert.throws(() => merchant.verify(`${vector.canonical}x`, vector.sign), BadSignatureError);
  }
});

for (const vector of vectors.answers) {
  test(`answer: ${vector.name}`, () => {
    const answer = { httpStatus: vector.http_status, body: vector.body, xSign: vector.x_sign };
    const [outcome, value] = outcomeOf(() => verifyAnswer(vector.dialect, answer, platform, vector.app_id));
    assert.equal(outcome, vector.outcome);
    if (outcome === "ok") assert.deepEqual(value, vector.data);
    if (outcome === "api_error") assert.equal(value, vector.code);
  });
}

for (const vector of vectors.callbacks) {
  test(`callback: ${vector.name}`, () => {
    const verifier = new CallbackVerifier(platform, vector.app_id, vectors.webhook_secret);
    const [outcome, callback] = outcomeOf(() =>
      verifier.verify(vector.headers, Buffer.from(vector.body, "utf8"), vector.now_s));
    assert.equal(outcome, vector.outcome);
    if (outcome === "ok") {
      assert.equal(callback.dialect, vector.dialect);
      assert.deepEqual(callback.data, vector.data);
      assert.equal(callback.webhookId, vector.headers["webhook-id"]);
    }
  });
}

for (const vector of vectors.brcodes) {
  test(`BR Code: ${vector.name}`, () => {
    const [outcome, fields] = outcomeOf(() => decodeBrCode(vector.code));
    assert.equal(outcome, vector.outcome);
    if (outcome === "ok") assert.deepEqual(fields, vector.fields);
  });
}

test("a signing key never shows its material", () => {
  const key = new SigningKey(vectors.merchant_private_key_pem);
  assert.ok(!inspect(key).includes("PRIVATE"));
  assert.ok(!JSON.stringify(key).includes("PRIVATE"));
});
