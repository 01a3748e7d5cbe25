// Typed values of kassa's answers and callbacks. Money is integer minor units (cents).

import { MalformedError } from "./errors.js";

/** collect `status`: 0 not started, 1 in progress, 2 succeeded, 3 failed, -1 exception. */
export const CollectStatus = {
  NotStarted: 0,
  InProgress: 1,
  Succeeded: 2,
  Failed: 3,
  Exception: -1,
} as const;
export type CollectStatus = (typeof CollectStatus)[keyof typeof CollectStatus];

/** pix `orderState`: 10 processing, 20 succeeded, 30 failed. */
export const PixState = { Processing: 10, Succeeded: 20, Failed: 30 } as const;
export type PixState = (typeof PixState)[keyof typeof PixState];

export type Data = Record<string, unknown>;

const AMOUNT = /^(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?$/;

/** "25.00" → 2500. */
export function amountToMinor(text: unknown): number {
  const match = typeof text === "string" ? AMOUNT.exec(text) : null;
  if (!match) throw new MalformedError(`not an amount: ${JSON.stringify(text)}`);
  return Number(match[1]) * 100 + Number((match[2] ?? "").padEnd(2, "0"));
}

/** 2500 → "25.00". */
export function minorToAmount(minor: number): string {
  if (!Number.isSafeInteger(minor) || minor < 0) {
    throw new RangeError("an amount is a non-negative integer of minor units");
  }
  return `${Math.floor(minor / 100)}.${String(minor % 100).padStart(2, "0")}`;
}

function text(data: Data, name: string): string {
  const value = data[name];
  if (typeof value !== "string") throw new MalformedError(`${name} is missing or not text`);
  return value;
}

function integer(data: Data, name: string): number {
  const value = data[name];
  if (!Number.isSafeInteger(value)) throw new MalformedError(`${name} is missing or not an integer`);
  return value as number;
}

function optional(data: Data, name: string): string | undefined {
  return typeof data[name] === "string" ? (data[name] as string) : undefined;
}

export interface CollectCreated {
  appId: number;
  orderId: string;
  orderNo: string;
  payUrl: string;
}

export function collectCreated(data: Data): CollectCreated {
  return {
    appId: integer(data, "appId"),
    orderId: text(data, "orderId"),
    orderNo: text(data, "orderNo"),
    payUrl: text(data, "payUrl"),
  };
}

export interface CollectOrder {
  appId: number;
  orderId: string;
  orderNo: string;
  status: CollectStatus;
  amountMinor: number;
  actualAmountMinor: number;
  feeMinor: number;
  payTime?: string;
  errorMsg?: string;
}

export function collectOrder(data: Data): CollectOrder {
  const status = integer(data, "status");
  if (!(Object.values(CollectStatus) as number[]).includes(status)) {
    throw new MalformedError(`unknown status ${status}`);
  }
  return {
    appId: integer(data, "appId"),
    orderId: text(data, "orderId"),
    orderNo: text(data, "orderNo"),
    status: status as CollectStatus,
    amountMinor: amountToMinor(data.amount),
    actualAmountMinor: amountToMinor(data.actualAmount),
    feeMinor: amountToMinor(data.fee),
    payTime: optional(data, "payTime"),
    errorMsg: optional(data, "errorMsg"),
  };
}

export interface PixCreated {
  appId: number;
  orderNo: string;
  url: string;
  qrCode: string;
  orderState: number;
  serialNo: string;
}

export function pixCreated(data: Data): PixCreated {
  return {
    appId: integer(data, "appId"),
    orderNo: text(data, "orderNo"),
    url: text(data, "url"),
    qrCode: text(data, "qrCode"),
    orderState: integer(data, "orderState"),
    serialNo: text(data, "serialNo"),
  };
}

export interface PixOrder {
  appId: number;
  serialNo: string;
  orderNo: string;
  orderState: PixState;
  amountMinor: number;
  arrivalAmountMinor: number;
  transTime?: string;
  message?: string;
}

export function pixOrder(data: Data): PixOrder {
  const state = integer(data, "orderState");
  if (!(Object.values(PixState) as number[]).includes(state)) {
    throw new MalformedError(`unknown orderState ${state}`);
  }
  return {
    appId: integer(data, "appId"),
    serialNo: text(data, "serialNo"),
    orderNo: text(data, "orderNo"),
    orderState: state as PixState,
    amountMinor: amountToMinor(data.amount),
    arrivalAmountMinor: amountToMinor(data.arrivalAmount),
    transTime: optional(data, "transTime"),
    message: optional(data, "message"),
  };
}

/** One page of a day's settlement report; totals on the first page only. */
export interface SettlementReport {
  appId: number;
  date: string;
  currency: string;
  timeZone: string;
  lines: string;
  orders?: number;
  grossMinor?: number;
  feeMinor?: number;
  netMinor?: number;
  methods?: string;
  next?: string;
}

export function settlementReport(data: Data): SettlementReport {
  const minor = (name: string) => (name in data ? amountToMinor(data[name]) : undefined);
  return {
    appId: integer(data, "appId"),
    date: text(data, "date"),
    currency: text(data, "currency"),
    timeZone: text(data, "timeZone"),
    lines: text(data, "lines"),
    orders: typeof data.orders === "number" ? data.orders : undefined,
    grossMinor: minor("gross"),
    feeMinor: minor("fee"),
    netMinor: minor("net"),
    methods: optional(data, "methods"),
    next: optional(data, "next"),
  };
}
