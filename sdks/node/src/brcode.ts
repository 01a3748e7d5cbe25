// BR Codes (EMV QRCPS-MPM, the payload of PIX QR codes): TLV fields — two-digit id, two-digit
// length, value — with templates at ids 26–51, 62 and 80–99, starting with `000201` and ending
// with field 63, a CRC16-CCITT-FALSE of everything before its four upper-case hex digits.

import { MalformedError } from "./errors.js";

export const MAX_PAYLOAD_LEN = 512;

/** A code's fields by two-digit id; templates as nested objects. */
export interface BrCodeFields {
  [id: string]: string | BrCodeFields;
}

/** The code is well formed but its CRC does not hold: mistyped or altered. */
export class CrcMismatchError extends MalformedError {}

export function crc16(data: Buffer): number {
  let crc = 0xffff;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

function isTemplate(id: number): boolean {
  return (id >= 26 && id <= 51) || id === 62 || (id >= 80 && id <= 99);
}

type Entries = Array<[string, string | BrCodeFields]>;

function toObject(entries: Entries): BrCodeFields {
  const fields: BrCodeFields = {};
  for (const [id, value] of entries) fields[id] = value;
  return fields;
}

/** The fields in the order written (an object would put "26" before "00"). */
function parseFields(text: string, nested: boolean): Entries {
  const fields: Entries = [];
  let at = 0;
  while (at < text.length) {
    const header = text.slice(at, at + 4);
    if (!/^[0-9]{4}$/.test(header)) {
      throw new MalformedError(`at position ${at}: expected a field id and length`);
    }
    const id = header.slice(0, 2);
    const length = Number(header.slice(2));
    const value = text.slice(at + 4, at + 4 + length);
    if (value.length < length) throw new MalformedError(`field ${id} runs past the end`);
    if (fields.some(([seen]) => seen === id)) {
      throw new MalformedError(`field ${id} appears twice`);
    }
    if (isTemplate(Number(id))) {
      if (nested) throw new MalformedError(`field ${id} nests a template in a template`);
      fields.push([id, toObject(parseFields(value, true))]);
    } else {
      fields.push([id, value]);
    }
    at += 4 + length;
  }
  return fields;
}

/** The fields of a BR Code (63 left out). Throws MalformedError, or CrcMismatchError when
 * only the CRC is wrong. */
export function decodeBrCode(code: string): BrCodeFields {
  if (code.length === 0 || code.length > MAX_PAYLOAD_LEN) {
    throw new MalformedError("a BR Code has 1 to 512 characters");
  }
  if (!/^[\x20-\x7e]+$/.test(code)) throw new MalformedError("a BR Code is printable ASCII");
  const entries = parseFields(code, false);
  const [firstId, firstValue] = entries[0];
  if (firstId !== "00" || firstValue !== "01") {
    throw new MalformedError('a BR Code starts with field 00 = "01"');
  }
  const [lastId, stated] = entries[entries.length - 1];
  if (lastId !== "63" || typeof stated !== "string" || !/^[0-9A-F]{4}$/.test(stated)) {
    throw new MalformedError("a BR Code ends with field 63 of four upper-case hex digits");
  }
  const fields = toObject(entries.slice(0, -1));
  const computed = crc16(Buffer.from(code.slice(0, -4), "ascii"))
    .toString(16)
    .toUpperCase()
    .padStart(4, "0");
  if (stated !== computed) {
    throw new CrcMismatchError(`the CRC is ${stated} but the code's CRC is ${computed}`);
  }
  return fields;
}
