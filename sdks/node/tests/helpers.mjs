// Test helpers: a local OTLP/HTTP receiver stand-in and OTLP/JSON readers.
import * as http from 'node:http';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Starts a stand-in on `port` (0 = free port). `script` replies are used first, then `rule(req)`. */
export async function standIn(port = 0) {
  const s = {
    script: [],
    requests: [],
    rule: () => ({ status: 200, body: '{}' }),
    reply(status, retryAfter = null, body = '') {
      s.script.push({ status, retryAfter, body });
      return s;
    },
  };
  s.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const r = { path: req.url, headers: req.headers, body: raw.toString('utf8') };
      s.requests.push(r);
      const reply = s.script.shift() ?? s.rule(r);
      const headers = { 'Content-Type': 'application/json' };
      if (reply.retryAfter) headers['Retry-After'] = reply.retryAfter;
      res.writeHead(reply.status, headers);
      res.end(reply.body ?? '');
    });
  });
  await new Promise((resolve) => s.server.listen(port, '127.0.0.1', resolve));
  s.port = s.server.address().port;
  s.endpoint = `http://127.0.0.1:${s.port}`;
  s.close = () => new Promise((resolve) => s.server.close(resolve));
  return s;
}

/** A port nothing listens on (bound, then released). */
export async function freePort() {
  const srv = http.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

// temp dirs of a test file are removed when its process exits (node --test runs each file in its own)
const made = [];
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});
export const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'cms-node-test-'));
  made.push(d);
  return d;
};
export const spoolFiles = (dir) => {
  try {
    return readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
};
export const silent = { warn() {} };

/** Flattened data points of one request JSON: { metric, kind, point, attrs }. */
export function points(requestJson) {
  const req = typeof requestJson === 'string' ? JSON.parse(requestJson) : requestJson;
  const out = [];
  for (const rm of req.resourceMetrics) {
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        const kind = m.sum ? 'sum' : 'gauge';
        for (const dp of m[kind].dataPoints) {
          const attrs = Object.fromEntries(dp.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
          out.push({ metric: m.name, kind, point: dp, attrs, value: dp.asInt ?? dp.asDouble });
        }
      }
    }
  }
  return out;
}

export const named = (pts, metric) => pts.filter((p) => p.metric === metric);

export async function until(cond, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
}
