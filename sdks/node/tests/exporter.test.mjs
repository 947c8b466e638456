import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';

import { createClient, retryAfterMs } from '../src/index.js';
import { freePort, points, silent, spoolFiles, standIn, tempDir, until } from './helpers.mjs';

describe('exporter', () => {
  let dir;
  let sleeps;
  let clients;
  beforeEach(() => {
    dir = join(tempDir(), 'spool');
    sleeps = [];
    clients = [];
  });
  afterEach(async () => {
    for (const c of clients) await c.shutdown(1000);
  });

  const client = (endpoint, options = {}) => {
    const c = createClient({
      env: {}, endpoint, serviceName: 'svc', environment: 'dev', spoolDir: dir, exitHandler: false,
      exportIntervalMs: 50, initialBackoffMs: 100, maxBackoffMs: 1000, maxRetries: 3, logger: silent,
      sleep: async (ms) => { sleeps.push(ms); },
      ...options,
    });
    clients.push(c);
    return c;
  };

  test('retries a 503, honouring Retry-After, then delivers', async () => {
    const server = (await standIn()).reply(503, '1', 'busy');
    try {
      const cms = client(server.endpoint);
      cms.gauge('g', 1);
      assert.equal(await cms.flush(), true);
      assert.deepEqual(sleeps, [1000]);
      assert.equal(server.requests.length, 2);
      assert.equal(server.requests[0].body, server.requests[1].body);
      assert.equal(server.requests[1].path, '/v1/metrics');
      assert.equal(server.requests[1].headers['content-type'], 'application/json');
      const s = cms.stats();
      assert.equal(s.retries, 1);
      assert.equal(s.exportedPoints, 1);
      assert.equal(s.spooledFiles, 0);
    } finally {
      await server.close();
    }
  });

  test('backs off exponentially with jitter on 429, 502 and 504', async () => {
    const server = (await standIn()).reply(429).reply(502).reply(504);
    try {
      const cms = client(server.endpoint);
      cms.counter('c', 1);
      assert.equal(await cms.flush(), true);
      assert.equal(sleeps.length, 3);
      [[50, 100], [100, 200], [200, 400]].forEach(([lo, hi], i) => assert.ok(sleeps[i] >= lo && sleeps[i] <= hi, `wait ${i} was ${sleeps[i]}`));
      assert.equal(server.requests.length, 4);
      assert.equal(cms.stats().exportedPoints, 1);
    } finally {
      await server.close();
    }
  });

  test('spools instead of waiting when Retry-After exceeds the backoff cap, and replays later', async () => {
    const server = (await standIn()).reply(429, '1.5', 'slow down');
    try {
      const cms = client(server.endpoint);
      cms.gauge('g', 1);
      await cms.flush();
      assert.deepEqual(sleeps, []);
      assert.equal(cms.stats().spooledFiles, 1);
      assert.ok(await until(() => cms.stats().replayedFiles === 1));
      assert.equal(server.requests.length, 2);
      assert.deepEqual(spoolFiles(dir), []);
    } finally {
      await server.close();
    }
  });

  test('does not retry a 400 and counts the points as rejected', async () => {
    const server = (await standIn()).reply(400, null, '{"message":"bad metric"}');
    try {
      const cms = client(server.endpoint);
      cms.gauge('a', 1);
      cms.gauge('b', 2);
      await cms.flush();
      assert.equal(server.requests.length, 1);
      assert.deepEqual(sleeps, []);
      const s = cms.stats();
      assert.equal(s.rejected, 2);
      assert.equal(s.spooledFiles, 0);
      assert.match(s.lastError, /HTTP 400/);
      assert.deepEqual(spoolFiles(dir), []);
    } finally {
      await server.close();
    }
  });

  test('does not retry a 401 and sends the configured bearer key, gzip-compressed', async () => {
    const server = (await standIn()).reply(401);
    try {
      const cms = client(server.endpoint, { apiKey: 'k-123', compression: 'gzip' });
      cms.gauge('a', 1);
      await cms.flush();
      assert.equal(server.requests.length, 1);
      assert.equal(server.requests[0].headers.authorization, 'Bearer k-123');
      assert.equal(server.requests[0].headers['content-encoding'], 'gzip');
      assert.equal(points(server.requests[0].body).length, 1);
      assert.equal(cms.stats().rejected, 1);
    } finally {
      await server.close();
    }
  });

  test('counts partialSuccess rejections without retrying', async () => {
    const server = (await standIn()).reply(200, null, '{"partialSuccess":{"rejectedDataPoints":"1","errorMessage":"cms.asset_class must be one of ..."}}');
    try {
      const cms = client(server.endpoint);
      cms.gauge('a', 1);
      cms.gauge('b', 1);
      await cms.flush();
      const s = cms.stats();
      assert.equal(server.requests.length, 1);
      assert.equal(s.rejected, 1);
      assert.equal(s.exportedPoints, 2);
      assert.match(s.lastError, /cms.asset_class/);
    } finally {
      await server.close();
    }
  });

  test('splits a batch the endpoint finds too large', async () => {
    const server = await standIn();
    server.rule = (r) => (points(r.body).length > 2 ? { status: 413, body: 'too large' } : { status: 200 });
    try {
      const cms = client(server.endpoint, { backgroundExport: false });
      for (let i = 0; i < 7; i++) cms.gauge(`g${i}`, i);
      await cms.flush();
      assert.equal(cms.stats().exportedPoints, 7);
      assert.equal(cms.stats().rejected, 0);
    } finally {
      await server.close();
    }
  });

  test('spools while the endpoint is down and replays when it is back', async () => {
    const port = await freePort();
    const cms = client(`http://127.0.0.1:${port}`, { maxRetries: 1, initialBackoffMs: 10, maxBackoffMs: 20 });
    cms.gauge('before', 1);
    await cms.flush();
    cms.gauge('while_down', 2);
    await cms.flush();
    const down = cms.stats();
    assert.equal(down.spooledFiles, 2);
    assert.equal(down.spooledPoints, 2);
    assert.equal(down.exportedPoints, 0);
    assert.equal(spoolFiles(dir).length, 2);
    const server = await standIn(port);
    try {
      assert.ok(await until(async () => {
        await cms.flush();
        return spoolFiles(dir).length === 0;
      }), 'spool not replayed');
      const all = server.requests.map((r) => r.body).join('\n');
      assert.ok(all.includes('cms.app.before') && all.includes('cms.app.while_down'));
      assert.equal(cms.stats().replayedFiles, 2);
    } finally {
      await server.close();
    }
  });

  test('replays a spool left by an earlier process', async () => {
    const port = await freePort();
    const first = client(`http://127.0.0.1:${port}`, { maxRetries: 0 });
    first.counter('orders', 5);
    await first.shutdown();
    assert.equal(spoolFiles(dir).length, 1);
    const server = await standIn(port);
    try {
      const second = client(server.endpoint);
      await second.flush();
      assert.deepEqual(spoolFiles(dir), []);
      assert.equal(server.requests.length, 1);
      assert.ok(server.requests[0].body.includes('cms.app.orders'));
      assert.equal(second.stats().replayedFiles, 1);
    } finally {
      await server.close();
    }
  });

  test('shutdown spools what it could not deliver; later calls are dropped and counted', async () => {
    const port = await freePort();
    const cms = client(`http://127.0.0.1:${port}`, { backgroundExport: false, maxRetries: 0 });
    for (let i = 0; i < 5; i++) cms.gauge('g', i);
    await cms.shutdown();
    const files = spoolFiles(dir);
    assert.equal(files.length, 1);
    assert.equal(points(readFileSync(join(dir, files[0]), 'utf8')).length, 5);
    cms.gauge('after_close', 1);
    assert.equal(cms.stats().dropped, 1);
  });

  test('without a spool undeliverable points are dropped and counted', async () => {
    const port = await freePort();
    const cms = client(`http://127.0.0.1:${port}`, { spoolDir: 'off', maxRetries: 0 });
    cms.gauge('g', 1);
    await cms.flush();
    assert.equal(cms.stats().dropped, 1);
    assert.ok(cms.stats().lastError);
    assert.deepEqual(spoolFiles(dir), []);
  });

  test('a full queue drops new points without blocking the caller', async () => {
    let released = false;
    const waiting = [];
    const release = () => {
      released = true;
      waiting.splice(0).forEach((resolve) => resolve({ status: 200, body: '' }));
    };
    const stuck = () => (released ? Promise.resolve({ status: 200, body: '' }) : new Promise((resolve) => waiting.push(resolve)));
    const cms = client('http://127.0.0.1:9', { transport: stuck, maxQueueSize: 10, maxBatchSize: 5, exportIntervalMs: 10, spoolDir: 'off' });
    for (let i = 0; i < 100; i++) cms.gauge('g', i);
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 100; i++) cms.gauge('g', i);
    const s = cms.stats();
    assert.equal(s.enqueued + s.dropped, 200);
    assert.ok(s.dropped >= 180, `dropped ${s.dropped}`);
    assert.ok(s.queueSize <= 10);
    release();
  });

  test('Retry-After is read as seconds or as an HTTP date', () => {
    assert.equal(retryAfterMs('2'), 2000);
    assert.equal(retryAfterMs('0.25'), 250);
    assert.equal(retryAfterMs(null), -1);
    assert.equal(retryAfterMs('soon'), -1);
    const inFive = new Date(Date.now() + 5000).toUTCString();
    const ms = retryAfterMs(inFive);
    assert.ok(ms > 3000 && ms <= 5000, String(ms));
  });
});
