// What happens to queued points when the application's process ends without calling shutdown().
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { freePort, points, spoolFiles, standIn, tempDir } from './helpers.mjs';

const INDEX = fileURLToPath(new URL('../src/index.js', import.meta.url));

/** Runs a tiny application in a child process (asynchronously, so a stand-in here can answer it). */
function runApp(endpoint, spoolDir, tail = '') {
  const code = `
    import { createClient } from ${JSON.stringify(INDEX)};
    const cms = createClient({ env: {}, endpoint: ${JSON.stringify(endpoint)}, serviceName: 'short-job',
                               spoolDir: ${JSON.stringify(spoolDir)}, maxRetries: 0, logger: { warn() {} } });
    const run = cms.startRun({ assetClass: 'fx', job: 'fixing' });
    run.records(3);
    run.finish();
    ${tail}
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (status) => resolve({ status, stderr }));
  });
}

const RUN_METRICS = ['cms.batch.run.duration', 'cms.batch.run.finished', 'cms.batch.run.records', 'cms.batch.run.started'];

test('a process that ends without shutdown still delivers its points', async () => {
  const server = await standIn();
  try {
    const dir = join(tempDir(), 'spool');
    const child = await runApp(server.endpoint, dir);
    assert.equal(child.status, 0, child.stderr);
    const pts = server.requests.flatMap((r) => points(r.body));
    assert.deepEqual(pts.map((p) => p.metric).sort(), RUN_METRICS);
    assert.deepEqual(spoolFiles(dir), []);
  } finally {
    await server.close();
  }
});

test('a process that ends while the endpoint is down leaves its points in the spool', async () => {
  const dir = join(tempDir(), 'spool');
  const child = await runApp(`http://127.0.0.1:${await freePort()}`, dir);
  assert.equal(child.status, 0, child.stderr);
  const pts = spoolFiles(dir).flatMap((f) => points(readFileSync(join(dir, f), 'utf8')));
  assert.deepEqual(pts.map((p) => p.metric).sort(), RUN_METRICS);
});

test('a process that calls process.exit() at once spools its queue synchronously', async () => {
  const server = await standIn();
  try {
    const dir = join(tempDir(), 'spool');
    const child = await runApp(server.endpoint, dir, 'process.exit(0);');
    assert.equal(child.status, 0, child.stderr);
    assert.equal(server.requests.length, 0);
    const pts = spoolFiles(dir).flatMap((f) => points(readFileSync(join(dir, f), 'utf8')));
    assert.deepEqual(pts.map((p) => p.metric).sort(), RUN_METRICS);
  } finally {
    await server.close();
  }
});
