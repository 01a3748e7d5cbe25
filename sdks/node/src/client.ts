// The client of one app: typed, signed requests to both of kassa's APIs; answers believed only
// once verified; a timeout on every attempt and safe retries (an identical create is replayed
// by kassa, never doubled). Node's own fetch; no dependencies.

import { canonicalOfFields, FieldValue } from "./canonical.js";
import { MalformedError, TransportError } from "./errors.js";
import { SigningKey, VerifyingKey } from "./keys.js";
import {
  CollectCreated,
  collectCreated,
  CollectOrder,
  collectOrder,
  Data,
  minorToAmount,
  PixCreated,
  pixCreated,
  PixOrder,
  pixOrder,
  SettlementReport,
  settlementReport,
} from "./models.js";
import { Answer, verifyAnswer } from "./verify.js";

export const MAX_ANSWER_BYTES = 1024 * 1024;
const MAX_PAUSE_MS = 10_000;
const RETRY_STATUSES = [429, 500, 502, 503, 504];

export interface ClientOptions {
  baseUrl: string;
  appId: number;
  signingKey: SigningKey;
  /** `kassa keys platform`: the only key whose signatures are believed. */
  platformKey: VerifyingKey;
  /** Per attempt (default 10 s). */
  timeoutMs?: number;
  /** Attempts after the first (default 2). */
  maxRetries?: number;
  /** The first pause; each later one doubles (default 250 ms), or kassa's Retry-After. */
  firstPauseMs?: number;
}

export interface ApplyRequest {
  orderId: string;
  amountMinor: number;
  payType: "CASHIER" | "BANK_TRANSFER" | "EWALLET";
  inBankCode: string;
  name: string;
  phone: string;
  email: string;
  partnerUserId: string;
  callBackUrl: string;
  callBackFailUrl: string;
  notifyUrl?: string;
  country?: string;
  subject?: string;
  body?: string;
}

export interface PixInitRequest {
  userOrderNumber: string;
  submitAmountMinor: number;
  notifyUrl?: string;
}

export type CollectCurrency = "USD" | "EUR";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Client {
  readonly baseUrl: string;
  readonly appId: number;
  readonly #key: SigningKey;
  readonly #platform: VerifyingKey;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #firstPauseMs: number;

  constructor(options: ClientOptions) {
    if (!/^https?:\/\//.test(options.baseUrl)) throw new TypeError("the base URL must be http(s)://…");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.appId = options.appId;
    this.#key = options.signingKey;
    this.#platform = options.platformKey;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxRetries = options.maxRetries ?? 2;
    this.#firstPauseMs = options.firstPauseMs ?? 250;
  }

  /** Creates a collect order. The identical request again returns the first answer; other
   * fields under a used orderId throw ApiError 50000001. */
  async apply(currency: CollectCurrency, request: ApplyRequest): Promise<CollectCreated> {
    const { amountMinor, ...rest } = request;
    const fields = { appId: this.appId, ...rest, amount: minorToAmount(amountMinor) };
    return collectCreated(await this.#collect(currency, "apply", fields));
  }

  async query(currency: CollectCurrency, orderId: string, orderNo?: string): Promise<CollectOrder> {
    return collectOrder(await this.#collect(currency, "query", { appId: this.appId, orderId, orderNo }));
  }

  /** One page of a day's settlement report (`date` yyyy-MM-dd in the operator's zone). */
  async report(currency: CollectCurrency, date: string, after?: string): Promise<SettlementReport> {
    return settlementReport(await this.#collect(currency, "report", { appId: this.appId, date, after }));
  }

  /** Creates a PIX order with its BR Code. */
  async pixInitCollect(request: PixInitRequest): Promise<PixCreated> {
    const fields = {
      userOrderNumber: request.userOrderNumber,
      submitAmount: minorToAmount(request.submitAmountMinor),
      paymentType: "PIX",
      currencyType: "BRL",
      notifyUrl: request.notifyUrl,
    };
    return pixCreated(await this.#pix("/accountProxyCollect/initCollect", fields));
  }

  async pixQuery(userOrderNumber: string): Promise<PixOrder> {
    return pixOrder(await this.#pix("/proxyCollectQuery/query", { userOrderNumber }));
  }

  async pixReport(date: string, after?: string): Promise<SettlementReport> {
    return settlementReport(await this.#pix("/proxyCollectQuery/report", { date, after }));
  }

  async #collect(currency: string, operation: string, fields: Record<string, FieldValue>): Promise<Data> {
    if (currency !== "USD" && currency !== "EUR") {
      throw new TypeError("collect orders are USD or EUR; BRL orders are PIX orders");
    }
    const present = withoutEmpty(fields);
    const body = JSON.stringify({ ...present, sign: this.#key.sign(canonicalOfFields(present)) });
    const answer = await this.#post(`/${currency.toLowerCase()}/collect/${operation}`, body, {});
    return verifyAnswer("collect", answer, this.#platform, this.appId);
  }

  async #pix(path: string, fields: Record<string, FieldValue>): Promise<Data> {
    const present = withoutEmpty(fields);
    const headers = {
      "X-App-Id": String(this.appId),
      "X-Sign": this.#key.sign(canonicalOfFields(present)),
    };
    const answer = await this.#post(path, JSON.stringify(present), headers);
    return verifyAnswer("pix", answer, this.#platform, this.appId);
  }

  async #post(path: string, body: string, headers: Record<string, string>): Promise<Answer> {
    let pauseMs = this.#firstPauseMs;
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.#maxRetries;
      try {
        const answer = await this.#postOnce(path, body, headers);
        if (!RETRY_STATUSES.includes(answer.httpStatus) || last) return answer;
        await sleep(Math.min(answer.retryAfterS !== undefined ? answer.retryAfterS * 1000 : pauseMs, MAX_PAUSE_MS));
      } catch (error) {
        if (!(error instanceof TransportError) || last) throw error;
        await sleep(pauseMs);
      }
      pauseMs = Math.min(pauseMs * 2, MAX_PAUSE_MS);
    }
  }

  async #postOnce(path: string, body: string, headers: Record<string, string>): Promise<Answer> {
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new TransportError(`cannot reach kassa: ${(error as Error).message}`);
    }
    const text = await readBounded(response);
    const retryAfter = response.headers.get("retry-after");
    return {
      httpStatus: response.status,
      body: text,
      xSign: response.headers.get("x-sign") ?? undefined,
      retryAfterS: retryAfter && /^[0-9]+$/.test(retryAfter.trim()) ? Number(retryAfter) : undefined,
    };
  }
}

function withoutEmpty(fields: Record<string, FieldValue>): Record<string, FieldValue> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== null));
}

async function readBounded(response: Response): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body ?? []) {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) throw new MalformedError(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof MalformedError) throw error;
    throw new TransportError(`the answer broke off: ${(error as Error).message}`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new MalformedError("the answer is not UTF-8");
  }
}
