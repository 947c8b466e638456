// OTLP/HTTP JSON over node:http / node:https.

import * as http from 'node:http';
import * as https from 'node:https';
import { gzipSync } from 'node:zlib';

export const SDK_VERSION = '0.1.0';

/**
 * A transport posting request bodies to `url`. Resolves { status, retryAfter, body } for any HTTP
 * response; rejects when there is no response (connection refused, timeout, ...).
 */
export function httpTransport(url, headers, timeoutMs, gzip) {
  const target = new URL(url);
  const lib = target.protocol === 'https:' ? https : http;
  return (json) =>
    new Promise((resolve, reject) => {
      const body = gzip ? gzipSync(json) : Buffer.from(json);
      const h = {
        'Content-Type': 'application/json',
        'User-Agent': `cms-sdk-node/${SDK_VERSION}`,
        'Content-Length': body.length,
        ...headers,
      };
      if (gzip) h['Content-Encoding'] = 'gzip';
      const req = lib.request(target, { method: 'POST', headers: h, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            retryAfter: res.headers['retry-after'] ?? null,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no response within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
}
