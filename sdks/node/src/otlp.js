// OTLP/JSON encoding of an ExportMetricsServiceRequest.

const INT64_LIMIT = 9.2e18;

/** Shared value rule: integral numbers are ints, other numbers doubles. */
export function isIntegral(v) {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) < INT64_LIMIT);
}

/** An attribute value in OTLP/JSON: string, bool, int (as a decimal string) or double. */
export function anyValue(v) {
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'bigint') return { intValue: v.toString() };
  if (typeof v === 'number') {
    return isIntegral(v) ? { intValue: BigInt(v).toString() } : { doubleValue: v };
  }
  return { stringValue: String(v) };
}

/** [key, value] pairs (or an object) to OTLP KeyValue list, skipping null/undefined values. */
export function keyValues(pairs) {
  const entries = Array.isArray(pairs) ? pairs : Object.entries(pairs || {});
  const out = [];
  for (const [key, value] of entries) {
    if (value === undefined || value === null) continue;
    out.push({ key, value: anyValue(value) });
  }
  return out;
}

/**
 * One point: { name, unit, sum, attrs: KeyValue[], start: bigint|null, time: bigint, int: boolean, value }.
 * int points carry a number or BigInt, sent as a decimal string in asInt.
 */
export function makePoint(name, unit, sum, attrs, start, time, value, forceDouble = false) {
  const int = !forceDouble && isIntegral(value);
  return { name, unit, sum, attrs, start, time, int, value };
}

/** One resourceMetrics / scopeMetrics, one metric entry per name (first emitted first), points in order. */
export function encodeRequest(resourceAttrs, points) {
  const byName = new Map();
  for (const p of points) {
    let m = byName.get(p.name);
    if (!m) {
      const body = { dataPoints: [] };
      if (p.sum) {
        body.aggregationTemporality = 1;
        body.isMonotonic = true;
      }
      m = { name: p.name, unit: p.unit, [p.sum ? 'sum' : 'gauge']: body };
      byName.set(p.name, m);
    }
    const dp = { attributes: p.attrs };
    if (p.start !== null && p.start !== undefined) dp.startTimeUnixNano = p.start.toString();
    dp.timeUnixNano = p.time.toString();
    if (p.int) dp.asInt = BigInt(p.value).toString();
    else dp.asDouble = Number(p.value);
    (m.sum || m.gauge).dataPoints.push(dp);
  }
  return JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: resourceAttrs },
        scopeMetrics: [{ scope: { name: 'cms-sdk' }, metrics: [...byName.values()] }],
      },
    ],
  });
}
