// Reads BR Codes, one per line, from standard input and prints, for each, one JSON line with
// what an independent implementation (pix-utils) makes of it: {"ok":true,...fields} or
// {"ok":false,"error":...}. kassa's test suite compares this with what kassa meant to encode.
//
// With KASSA_FETCH_DYNAMIC=1, a dynamic code's charge is fetched as a payer's bank does, by
// pix-utils' own fetchPayload, and its JWS checked here with Node's crypto against the key set
// its header's `jku` names. Banks fetch over HTTPS; the test servers listen on loopback without
// TLS, so requests to 127.0.0.1 (and only those) go over plain HTTP. A line `jws <JWS>` has only
// its signature checked.
"use strict";
const crypto = require("crypto");
const axios = require("axios");
const { parsePix, hasError } = require("pix-utils");

axios.defaults.timeout = 10000;
axios.interceptors.request.use((config) => {
  config.url = config.url.replace(/^https:\/\/127\.0\.0\.1([:/])/, "http://127.0.0.1$1");
  return config;
});

async function checkSignature(jws, header) {
  const { data: keySet } = await axios.get(header.jku);
  const jwk = (keySet.keys || []).find((k) => k.kid === header.kid);
  if (!jwk) return false;
  const [head, payload, signature] = jws.split(".");
  return crypto.verify(
    "sha256",
    Buffer.from(`${head}.${payload}`),
    {
      key: crypto.createPublicKey({ key: jwk, format: "jwk" }),
      padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    },
    Buffer.from(signature, "base64url"),
  );
}

async function fetched(parsed) {
  const result = await parsed.fetchPayload({});
  if (hasError(result)) return { fetchError: result.message };
  return {
    header: result.header,
    payload: result.payload,
    signatureValid: result.header.alg === "PS256" && (await checkSignature(result.jwsString, result.header)),
  };
}

async function main() {
  const input = require("fs").readFileSync(0, "utf8");
  const fetch = process.env.KASSA_FETCH_DYNAMIC === "1";
  for (const line of input.split("\n")) {
    const code = line.trim();
    if (!code) continue;
    // `jws <compact JWS>`: only its signature is checked (the test suite's own check that a
    // changed payload fails).
    if (code.startsWith("jws ")) {
      const jws = code.slice(4);
      const header = JSON.parse(Buffer.from(jws.split(".")[0], "base64url"));
      console.log(JSON.stringify({ signatureValid: await checkSignature(jws, header) }));
      continue;
    }
    const parsed = parsePix(code);
    if (hasError(parsed)) {
      console.log(JSON.stringify({ ok: false, code, error: parsed.message }));
      continue;
    }
    const verdict = {
      ok: true,
      type: parsed.type,
      pixKey: parsed.pixKey,
      url: parsed.url,
      merchantName: parsed.merchantName,
      merchantCity: parsed.merchantCity,
      transactionAmount: parsed.transactionAmount,
      transactionCurrency: parsed.transactionCurrency,
      countryCode: parsed.countryCode,
      txid: parsed.txid,
    };
    if (fetch && parsed.type === "DYNAMIC") Object.assign(verdict, await fetched(parsed));
    console.log(JSON.stringify(verdict));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
