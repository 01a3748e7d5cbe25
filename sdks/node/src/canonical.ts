// The canonical string of a flat JSON object: the exact text that is signed. Every top-level
// field but `sign`; null and "" left out; keys sorted by their UTF-8 bytes; `key=value` joined
// by `&`, strings as their raw text, numbers and booleans as the literal written in the JSON
// text. Nested values and duplicate keys are refused: one signature must mean one message.

import { MalformedError } from "./errors.js";

export const SIGN_FIELD = "sign";

/** One top-level field: its key and its value's exact text. */
export interface RawField {
  key: string;
  raw: string;
}

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);

function skip(text: string, at: number): number {
  while (at < text.length && WHITESPACE.has(text[at])) at++;
  return at;
}

/** The end of the JSON value starting at `at` (the text is known to be valid JSON). */
function valueEnd(text: string, at: number): number {
  let depth = 0;
  let inString = false;
  for (let i = at; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') {
        inString = false;
        if (depth === 0) return i + 1;
      }
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return i + 1;
      if (depth < 0) return i;
    } else if (depth === 0 && (c === "," || WHITESPACE.has(c))) return i;
  }
  return text.length;
}

/** The top-level fields of a JSON object text, each value as its exact text. Refuses invalid
 * JSON, non-objects and duplicate keys. */
export function rawFields(text: string): RawField[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new MalformedError(`not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new MalformedError("the body must be a JSON object");
  }
  const fields: RawField[] = [];
  const seen = new Set<string>();
  let at = skip(text, skip(text, 0) + 1);
  while (text[at] !== "}") {
    const keyEnd = valueEnd(text, at);
    const key = JSON.parse(text.slice(at, keyEnd)) as string;
    const begin = skip(text, skip(text, keyEnd) + 1);
    const end = valueEnd(text, begin);
    if (seen.has(key)) throw new MalformedError(`field ${key} appears more than once`);
    seen.add(key);
    fields.push({ key, raw: text.slice(begin, end) });
    at = skip(text, end);
    if (text[at] === ",") at = skip(text, at + 1);
  }
  return fields;
}

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function join(parts: Array<[string, string | null]>): string {
  return parts
    .filter(([key, text]) => key !== SIGN_FIELD && text !== null && text !== "")
    .sort(([a], [b]) => byUtf8(a, b))
    .map(([key, text]) => `${key}=${text}`)
    .join("&");
}

/** The canonical string and the `sign` of a received JSON text. */
export function canonicalOfText(text: string): { canonical: string; sign?: string } {
  const parts: Array<[string, string | null]> = [];
  let sign: string | undefined;
  for (const { key, raw } of rawFields(text)) {
    if (raw[0] === "{" || raw[0] === "[") {
      throw new MalformedError(`field ${key} must not be an object or an array`);
    }
    const value = raw[0] === '"' ? (JSON.parse(raw) as string) : raw === "null" ? null : raw;
    if (key === SIGN_FIELD) {
      if (value !== null && raw[0] !== '"') throw new MalformedError("field sign must be a string");
      sign = value ?? undefined;
    }
    parts.push([key, value]);
  }
  return { canonical: join(parts), sign };
}

export type FieldValue = string | number | boolean | null | undefined;

/** The canonical string of fields the caller builds. */
export function canonicalOfFields(fields: Record<string, FieldValue>): string {
  return join(
    Object.entries(fields).map(([key, value]) => [
      key,
      value === null || value === undefined ? null : String(value),
    ]),
  );
}
