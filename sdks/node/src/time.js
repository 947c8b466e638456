// Time helpers: all SDK timestamps are BigInt nanoseconds since the Unix epoch.

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/;
const RESYNC_NS = 10_000_000_000n;

/** The system clock: wall-clock time with sub-millisecond resolution from the monotonic timer. */
export function systemClock() {
  let wall = BigInt(Date.now()) * 1_000_000n;
  let hr = process.hrtime.bigint();
  return () => {
    const now = process.hrtime.bigint();
    if (now - hr > RESYNC_NS) {
      wall = BigInt(Date.now()) * 1_000_000n;
      hr = now;
      return wall;
    }
    return wall + (now - hr);
  };
}

/** RFC 3339 UTC text ending in Z (0-9 fraction digits) to BigInt epoch nanoseconds, exactly. */
export function parseTime(text) {
  const m = RFC3339.exec(text);
  if (!m) throw new Error(`time '${text}' is not RFC 3339 UTC like 2026-11-20T22:01:00.250Z`);
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return BigInt(ms) * 1_000_000n + BigInt((m[7] || '').padEnd(9, '0'));
}

/** BigInt epoch nanoseconds to YYYY-MM-DDTHH:MM:SS.mmmZ (milliseconds, truncated). */
export function formatMillis(ns) {
  let ms = ns / 1_000_000n;
  if (ns < 0n && ms * 1_000_000n !== ns) ms -= 1n;
  return new Date(Number(ms)).toISOString();
}

/** A Date, an RFC 3339 string, a BigInt of nanoseconds or a number of milliseconds to BigInt nanoseconds. */
export function toNanos(t) {
  if (typeof t === 'bigint') return t;
  if (t instanceof Date) return BigInt(t.getTime()) * 1_000_000n;
  if (typeof t === 'string') return parseTime(t);
  if (typeof t === 'number' && Number.isFinite(t)) return BigInt(Math.round(t * 1_000_000));
  throw new TypeError(`cannot use ${String(t)} as a time: give a Date, an RFC 3339 string, BigInt ns or ms`);
}

/** A clock that only moves when told to, for tests and replaying recorded events. */
export class ManualClock {
  constructor(start = 0n) {
    this.ns = toNanos(start);
    this.now = () => this.ns;
  }

  set(t) {
    this.ns = toNanos(t);
  }

  advanceMs(ms) {
    this.ns += BigInt(Math.round(ms * 1_000_000));
  }
}
