// The errors of the SDK: what kassa answered (its dialect's code), or why no believable answer
// came.

export type Dialect = "collect" | "pix";

/** Every error of this package. */
export class KassaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** kassa refused the request: the dialect's code as text ("10000005", "1005"). */
export class ApiError extends KassaError {
  constructor(
    readonly dialect: Dialect,
    readonly code: string,
    readonly msg: string,
    readonly httpStatus: number,
    readonly retryAfterS?: number,
  ) {
    super(`kassa refused the request: ${code} ${msg} (HTTP ${httpStatus})`);
  }

  /** 1 format, 2 signature and app, 3 business rule, 4 not found, 5 duplicate, 9 internal. */
  get family(): number {
    return /^[0-9]/.test(this.code) ? Number(this.code[0]) : 0;
  }

  get retryable(): boolean {
    return [429, 500, 502, 503, 504].includes(this.httpStatus);
  }
}

/** kassa could not be reached or did not answer in time. A create may have been stored: send
 * the identical request again (an idempotent replay) or query the order. */
export class TransportError extends KassaError {}

/** The answer or callback is not signed by the platform key (or the app's webhook secret). */
export class BadSignatureError extends KassaError {}

/** Genuinely signed data about another app than the caller's: never trust it. */
export class WrongAppError extends KassaError {}

/** The text is not what the API promises (not JSON, nested, fields missing). */
export class MalformedError extends KassaError {}
