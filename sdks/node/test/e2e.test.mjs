// End to end against a real `kassa serve --demo`: create, pay through the sandbox, query,
// receive and verify the callback — for both APIs. The server and its settings come from the
// environment (KASSA_E2E_*), set by kassa's test suite (crates/kassa/tests/sdks.rs).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import {
  ApiError,
  CallbackVerifier,
  Client,
  CollectStatus,
  decodeBrCode,
  PixState,
  SigningKey,
  VerifyingKey,
  WrongAppError,
} from "../dist/index.js";

const env = process.env;
const skip = env.KASSA_E2E_URL ? false : "KASSA_E2E_URL is not set: no kassa server to talk to";

const waiting = new Map(); // orderNo → resolve
const arrived = [];
let server;
let notifyUrl;

before(async () => {
  if (skip) return;
  server = createServer((request, response) => {
    const chunks = [];
    let size = 0;
    request.on("data", (chunk) => {
      size += chunk.length;
      if (size <= 64 * 1024) chunks.push(chunk);
    });
    request.on("end", () => {
      const callback = { headers: request.headers, body: Buffer.concat(chunks) };
      arrived.push(callback);
      for (const [orderNo, resolve] of waiting) {
        if (callback.body.includes(orderNo)) resolve(callback);
      }
      response.end("success");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  notifyUrl = `http://127.0.0.1:${server.address().port}/notify`;
});

after(() => server?.close());

function client(appId) {
  return new Client({
    baseUrl: env.KASSA_E2E_URL,
    appId,
    signingKey: new SigningKey(readFileSync(env.KASSA_E2E_MERCHANT_KEY)),
    platformKey: new VerifyingKey(readFileSync(env.KASSA_E2E_PLATFORM_KEY)),
  });
}

function pay(orderNo) {
  execFileSync(env.KASSA_E2E_KASSA, ["trigger", orderNo, "--outcome", "paid",
    "--database-url", env.KASSA_E2E_DATABASE_URL], { timeout: 30_000, stdio: "pipe" });
}

function callbackOf(orderNo) {
  const already = arrived.find((c) => c.body.includes(orderNo));
  if (already) return Promise.resolve(already);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no callback for ${orderNo} within 30 s`)), 30_000);
    waiting.set(orderNo, (callback) => {
      clearTimeout(timer);
      waiting.delete(orderNo);
      resolve(callback);
    });
  });
}

test("collect: create, pay, query, callback", { skip }, async () => {
  const appId = Number(env.KASSA_E2E_COLLECT_APP_ID);
  const kassa = client(appId);
  const orderId = `node-${randomUUID().slice(0, 12)}`;
  const order = {
    orderId, amountMinor: 2500, payType: "CASHIER", inBankCode: "CASHIER", country: "000",
    name: "Jane Doe", phone: "+31612345678", email: "jane@example.com", partnerUserId: "node-user",
    callBackUrl: "https://shop.example/paid", callBackFailUrl: "https://shop.example/failed",
    notifyUrl,
  };
  const created = await kassa.apply("EUR", order);
  assert.match(created.orderNo, /^[0-9]{16}$/);
  assert.ok(created.payUrl.startsWith(env.KASSA_E2E_URL));
  assert.deepEqual(await kassa.apply("EUR", order), created, "an identical create is replayed");
  await assert.rejects(kassa.apply("EUR", { ...order, amountMinor: 2600 }),
    (error) => error instanceof ApiError && error.code === "50000001" && error.httpStatus === 409);
  assert.equal((await kassa.query("EUR", orderId)).status, CollectStatus.NotStarted);
  pay(created.orderNo);
  const paid = await kassa.query("EUR", orderId, created.orderNo);
  assert.equal(paid.status, CollectStatus.Succeeded);
  assert.equal(paid.actualAmountMinor, 2500);

  const { headers, body } = await callbackOf(created.orderNo);
  const platform = new VerifyingKey(readFileSync(env.KASSA_E2E_PLATFORM_KEY));
  const callback = new CallbackVerifier(platform, appId, env.KASSA_E2E_COLLECT_SECRET).verify(headers, body);
  assert.equal(callback.dialect, "collect");
  assert.equal(callback.order.status, CollectStatus.Succeeded);
  assert.equal(callback.order.orderId, orderId);
  assert.ok(callback.webhookId);
  assert.throws(() => new CallbackVerifier(platform, appId + 1000).verify(headers, body), WrongAppError);
});

test("pix: create, pay, query, callback", { skip }, async () => {
  const appId = Number(env.KASSA_E2E_PIX_APP_ID);
  const kassa = client(appId);
  const number = `node-${randomUUID().slice(0, 12)}`;
  const created = await kassa.pixInitCollect({ userOrderNumber: number, submitAmountMinor: 1234, notifyUrl });
  const fields = decodeBrCode(created.qrCode);
  assert.equal(fields["54"], "12.34");
  assert.equal(fields["62"]["05"], created.orderNo);
  await assert.rejects(kassa.pixInitCollect({ userOrderNumber: "node-x", submitAmountMinor: 0 }),
    (error) => error instanceof ApiError && error.code === "3002");
  pay(created.orderNo);
  const paid = await kassa.pixQuery(number);
  assert.equal(paid.orderState, PixState.Succeeded);
  assert.equal(paid.arrivalAmountMinor, 1234);

  const { headers, body } = await callbackOf(created.orderNo);
  const platform = new VerifyingKey(readFileSync(env.KASSA_E2E_PLATFORM_KEY));
  const callback = new CallbackVerifier(platform, appId, env.KASSA_E2E_PIX_SECRET).verify(headers, body);
  assert.equal(callback.dialect, "pix");
  assert.equal(callback.order.orderState, PixState.Succeeded);
  assert.equal(callback.order.serialNo, number);
});
