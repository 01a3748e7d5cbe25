// kassa-client: a merchant's client of the kassa payment gateway.
// - Client: create, query and report orders of both APIs (collect: USD, EUR; pix: BRL), signed
//   with the merchant's key, answers verified with the platform key.
// - CallbackVerifier: check a callback's RSA and Standard Webhooks signatures and its appId.
// - decodeBrCode: a PIX BR Code's fields, its CRC checked.

export { decodeBrCode, crc16, CrcMismatchError } from "./brcode.js";
export type { BrCodeFields } from "./brcode.js";
export { canonicalOfFields, canonicalOfText } from "./canonical.js";
export { Client } from "./client.js";
export type { ApplyRequest, ClientOptions, CollectCurrency, PixInitRequest } from "./client.js";
export {
  ApiError,
  BadSignatureError,
  KassaError,
  MalformedError,
  TransportError,
  WrongAppError,
} from "./errors.js";
export type { Dialect } from "./errors.js";
export { SigningKey, VerifyingKey } from "./keys.js";
export { amountToMinor, CollectStatus, minorToAmount, PixState } from "./models.js";
export type {
  CollectCreated,
  CollectOrder,
  PixCreated,
  PixOrder,
  SettlementReport,
} from "./models.js";
export { CallbackVerifier, verifyAnswer, verifyWebhook, webhookSignature } from "./verify.js";
export type { Answer, Callback, Headers } from "./verify.js";
