// Reads BR Codes, one per line, from standard input and prints, for each, one JSON line with
// what an independent implementation (pix-utils) makes of it: {"ok":true,...fields} or
// {"ok":false,"error":...}. kassa's test suite compares this with what kassa meant to encode.
"use strict";
const { parsePix, hasError } = require("pix-utils");

const input = require("fs").readFileSync(0, "utf8");
for (const line of input.split("\n")) {
  const code = line.trim();
  if (!code) continue;
  const parsed = parsePix(code);
  if (hasError(parsed)) {
    console.log(JSON.stringify({ ok: false, code, error: parsed.message }));
  } else {
    console.log(JSON.stringify({
      ok: true,
      type: parsed.type,
      pixKey: parsed.pixKey,
      merchantName: parsed.merchantName,
      merchantCity: parsed.merchantCity,
      transactionAmount: parsed.transactionAmount,
      transactionCurrency: parsed.transactionCurrency,
      countryCode: parsed.countryCode,
      txid: parsed.txid,
    }));
  }
}
