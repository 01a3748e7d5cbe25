// SHA256withRSA (RSASSA-PKCS1-v1_5 with SHA-256) with Node's crypto: the merchant's private key
// signs requests, the platform's public key verifies answers and callbacks. Signatures are
// standard base64 with padding.

import { createPrivateKey, createPublicKey, createSign, createVerify, KeyObject } from "node:crypto";
import { BadSignatureError, KassaError } from "./errors.js";

const MIN_KEY_BITS = 2048;
const MAX_KEY_BITS = 4096;
const MAX_SIGNATURE_BASE64 = 684;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function checkRsa(key: KeyObject): KeyObject {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== "rsa") throw new KassaError("the key is not an RSA key");
  if (bits < MIN_KEY_BITS || bits > MAX_KEY_BITS) {
    throw new KassaError(`the key has ${bits} bits; kassa accepts 2048 to 4096`);
  }
  return key;
}

/** A merchant's private key (PKCS#8 or PKCS#1 PEM). Its inspection never shows key material. */
export class SigningKey {
  readonly #key: KeyObject;

  constructor(pem: string | Buffer) {
    this.#key = checkRsa(createPrivateKey(pem));
  }

  /** The base64 signature of `message`. */
  sign(message: string | Buffer): string {
    return createSign("sha256").update(message).sign(this.#key, "base64");
  }

  toString(): string {
    return "SigningKey(RSA, ***)";
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }
}

/** A public key: PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or bare base64 DER. */
export class VerifyingKey {
  readonly #key: KeyObject;

  constructor(text: string | Buffer) {
    const trimmed = text.toString().trim();
    if (trimmed.startsWith("-----BEGIN")) {
      this.#key = checkRsa(createPublicKey(trimmed));
    } else {
      const compact = trimmed.replace(/\s+/g, "");
      if (!BASE64.test(compact)) throw new KassaError("the key is neither PEM nor base64 DER");
      this.#key = checkRsa(
        createPublicKey({ key: Buffer.from(compact, "base64"), format: "der", type: "spki" }),
      );
    }
  }

  /** Throws BadSignatureError unless `signatureB64` signs `message`. */
  verify(message: string | Buffer, signatureB64: string | undefined): void {
    if (typeof signatureB64 !== "string" || signatureB64 === "") {
      throw new BadSignatureError("sign is missing");
    }
    if (signatureB64.length > MAX_SIGNATURE_BASE64 || !BASE64.test(signatureB64)) {
      throw new BadSignatureError("sign is not standard base64 with padding");
    }
    const verifier = createVerify("sha256").update(message);
    if (!verifier.verify(this.#key, Buffer.from(signatureB64, "base64"))) {
      throw new BadSignatureError("sign does not match the message");
    }
  }
}
