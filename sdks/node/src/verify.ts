// Believing kassa: an answer or callback is trusted only once the platform key's signature over
// its canonical string verifies, the Standard Webhooks signature by the app's secret holds
// (callbacks, when the receiver has the secret), and its `appId` is the receiver's app.

import { createHmac, timingSafeEqual } from "node:crypto";
import { canonicalOfText, rawFields } from "./canonical.js";
import {
  ApiError,
  BadSignatureError,
  Dialect,
  MalformedError,
  WrongAppError,
} from "./errors.js";
import { VerifyingKey } from "./keys.js";
import { CollectOrder, collectOrder, Data, PixOrder, pixOrder } from "./models.js";

const COLLECT_OK = "00000000";
export const WEBHOOK_TOLERANCE_S = 300;
const MAX_WEBHOOK_SIGNATURES = 8;

function parse(text: string): Data {
  try {
    return JSON.parse(text) as Data;
  } catch (error) {
    throw new MalformedError(`not JSON: ${(error as Error).message}`);
  }
}

/** Checks signed data (`sign` inside it, or `xSign` from the header) and its `appId`. */
export function verifySigned(
  dataText: string,
  platformKey: VerifyingKey,
  appId: number,
  xSign?: string,
): Data {
  const { canonical, sign } = canonicalOfText(dataText);
  const signature = xSign ?? sign;
  if (!signature) throw new BadSignatureError("the data carries no signature");
  platformKey.verify(canonical, signature);
  const data = parse(dataText);
  if (data.appId !== appId) {
    throw new WrongAppError(`the signed data belongs to app ${String(data.appId)}, not to app ${appId}`);
  }
  return data;
}

/** An answer of kassa: HTTP status, its `X-Sign` header (pix) and `Retry-After`, its body. */
export interface Answer {
  httpStatus: number;
  body: string;
  xSign?: string;
  retryAfterS?: number;
}

/** An answer's verified `data`; a refusal throws ApiError. */
export function verifyAnswer(
  dialect: Dialect,
  answer: Answer,
  platformKey: VerifyingKey,
  appId: number,
): Data {
  const envelope = parse(answer.body);
  if (envelope === null || typeof envelope !== "object" || Array.isArray(envelope)) {
    throw new MalformedError("the answer is not a JSON object");
  }
  if (dialect === "collect") {
    if (envelope.status !== "1" || envelope.error !== COLLECT_OK) {
      throw new ApiError("collect", String(envelope.error), String(envelope.msg ?? ""),
        answer.httpStatus, answer.retryAfterS);
    }
  } else if (envelope.code !== 0) {
    throw new ApiError("pix", String(envelope.code), String(envelope.msg ?? ""),
      answer.httpStatus, answer.retryAfterS);
  } else if (!answer.xSign) {
    throw new BadSignatureError("the answer has no X-Sign header");
  }
  const data = rawFields(answer.body).find((field) => field.key === "data");
  if (!data || data.raw[0] !== "{") throw new MalformedError("no data in a successful answer");
  return verifySigned(data.raw, platformKey, appId, dialect === "pix" ? answer.xSign : undefined);
}

/** The `v1,…` signature of one delivery (Standard Webhooks). */
export function webhookSignature(
  secret: string,
  webhookId: string,
  timestamp: string,
  body: Buffer,
): string {
  if (!secret.startsWith("whsec_")) {
    throw new BadSignatureError("a webhook secret is whsec_ followed by a base64 key");
  }
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const mac = createHmac("sha256", key).update(`${webhookId}.${timestamp}.`).update(body);
  return `v1,${mac.digest("base64")}`;
}

export type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

/** Checks `webhook-signature` (any of its space-separated `v1,` entries) and that
 * `webhook-timestamp` is within five minutes of `nowS`. */
export function verifyWebhook(secret: string, headers: Headers, body: Buffer, nowS: number): void {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new BadSignatureError("the Standard Webhooks headers are missing");
  }
  if (!/^[0-9]+$/.test(timestamp)) {
    throw new BadSignatureError("webhook-timestamp is not a number of seconds");
  }
  if (Math.abs(nowS - Number(timestamp)) > WEBHOOK_TOLERANCE_S) {
    throw new BadSignatureError("webhook-timestamp is more than five minutes from now");
  }
  const expected = Buffer.from(webhookSignature(secret, id, timestamp, body));
  const matches = signatures
    .split(" ")
    .slice(0, MAX_WEBHOOK_SIGNATURES)
    .some((entry) => {
      const sent = Buffer.from(entry);
      return sent.length === expected.length && timingSafeEqual(sent, expected);
    });
  if (!matches) throw new BadSignatureError("no v1 signature in webhook-signature matches the secret");
}

/** A verified callback; `webhookId` is the same on every retry of one callback. */
export type Callback =
  | { dialect: "collect"; order: CollectOrder; webhookId?: string; data: Data }
  | { dialect: "pix"; order: PixOrder; webhookId?: string; data: Data };

/** Checks the callbacks of one app. With `webhookSecret` (`whsec_…`) the Standard Webhooks
 * signature is required too: it binds a callback to the app and stops replays. */
export class CallbackVerifier {
  constructor(
    readonly platformKey: VerifyingKey,
    readonly appId: number,
    readonly webhookSecret?: string,
  ) {}

  /** `headers` as Node's `IncomingMessage.headers` (any case); `body` the bytes received. */
  verify(headers: Headers, body: Buffer | string, nowS = Math.floor(Date.now() / 1000)): Callback {
    const raw = typeof body === "string" ? Buffer.from(body, "utf8") : body;
    if (this.webhookSecret !== undefined) verifyWebhook(this.webhookSecret, headers, raw, nowS);
    const text = new TextDecoder("utf-8", { fatal: true });
    let decoded: string;
    try {
      decoded = text.decode(raw);
    } catch {
      throw new MalformedError("the callback is not UTF-8");
    }
    const xSign = header(headers, "x-sign");
    const data = verifySigned(decoded, this.platformKey, this.appId, xSign);
    const webhookId = header(headers, "webhook-id");
    return xSign !== undefined
      ? { dialect: "pix", order: pixOrder(data), webhookId, data }
      : { dialect: "collect", order: collectOrder(data), webhookId, data };
  }
}
