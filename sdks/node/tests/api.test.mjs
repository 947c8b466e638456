import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import { createClient, ManualClock } from '../src/index.js';
import { named, points, silent } from './helpers.mjs';

class DataQualityError extends Error {}

describe('business API', () => {
  let clock;
  let cms;
  beforeEach(() => {
    clock = new ManualClock('2026-11-20T22:00:00Z');
    cms = createClient({ env: {}, serviceName: 'pricing', environment: 'prod', clock, backgroundExport: false, exitHandler: false, spoolDir: 'off', logger: silent });
  });

  test('a run callback that resolves records success with records, bytes and a stage', async () => {
    const result = await cms.run({ assetClass: 'derivatives', job: 'eod_valuation', runId: 'r-1', scheduledStart: '2026-11-20T22:00:00Z' }, async (run) => {
      clock.advanceMs(1000);
      await run.stage({ name: 'validation', type: 'validation', dependsOn: ['ingest'] }, async (stage) => {
        stage.records(123);
        clock.advanceMs(500);
      });
      run.records(1000).bytes(2048);
      clock.advanceMs(1500);
      return 'done';
    });
    assert.equal(result, 'done');
    const pts = points(cms.drainToJson());
    const finished = named(pts, 'cms.batch.run.finished')[0];
    assert.equal(finished.attrs['cms.status'], 'success');
    assert.equal(finished.attrs['cms.error_type'], '');
    assert.equal(finished.attrs['cms.run_id'], 'r-1');
    assert.equal(finished.attrs['cms.scheduled_start'], '2026-11-20T22:00:00Z');
    assert.equal(named(pts, 'cms.batch.run.duration')[0].value, 3);
    assert.equal(named(pts, 'cms.batch.run.records')[0].value, '1000');
    assert.equal(named(pts, 'cms.batch.run.bytes')[0].value, '2048');
    const stage = named(pts, 'cms.stage.run.finished')[0];
    assert.equal(stage.attrs['cms.stage_depends_on'], 'ingest');
    assert.equal(stage.attrs['cms.attempt'], '1');
    assert.equal(stage.attrs['cms.scheduled_start'], undefined);
    assert.equal(named(pts, 'cms.stage.run.duration')[0].value, 0.5);
  });

  test('an error thrown in a stage fails the stage and the run with its class name and is re-thrown', async () => {
    await assert.rejects(
      cms.run({ assetClass: 'equities', job: 'eod_pnl' }, async (run) => {
        await run.stage({ name: 'validation', type: 'validation' }, async () => {
          throw new DataQualityError('bad prices');
        });
      }),
      (err) => err instanceof DataQualityError && err.message === 'bad prices',
    );
    const pts = points(cms.drainToJson());
    assert.equal(named(pts, 'cms.stage.run.finished')[0].attrs['cms.error_type'], 'DataQualityError');
    assert.equal(named(pts, 'cms.batch.run.finished')[0].attrs['cms.error_type'], 'DataQualityError');
    assert.equal(named(pts, 'cms.batch.run.finished')[0].attrs['cms.status'], 'failed');
  });

  test('built-in error names are used as they are', async () => {
    await assert.rejects(cms.run({ assetClass: 'fx', job: 'fixing' }, async () => { throw new TypeError('x'); }));
    assert.equal(named(points(cms.drainToJson()), 'cms.batch.run.finished')[0].attrs['cms.error_type'], 'TypeError');
  });

  test('explicit start, fail and close record one failure with the default run id', () => {
    const run = cms.startRun({ assetClass: 'fx', job: 'rates_snapshot' });
    run.fail('UpstreamDataMissing');
    run.close();
    run.finish();
    const finished = named(points(cms.drainToJson()), 'cms.batch.run.finished');
    assert.equal(finished.length, 1);
    assert.equal(finished[0].attrs['cms.error_type'], 'UpstreamDataMissing');
    assert.equal(finished[0].attrs['cms.run_id'], 'fx.rates_snapshot.2026-11-20T22:00:00.000Z');
  });

  test('a retried stage gets the next attempt number', () => {
    const run = cms.startRun({ assetClass: 'equities', job: 'eod_pnl' });
    run.startStage({ name: 'validation', type: 'validation' }).fail('Timeout');
    const second = run.startStage({ name: 'validation', type: 'validation' });
    second.finish();
    assert.equal(second.attempt, 2);
    const started = named(points(cms.drainToJson()), 'cms.stage.run.started');
    assert.equal(started[1].attrs['cms.attempt'], '2');
    assert.equal(started[1].attrs['cms.retries'], '1');
  });

  test('feed heartbeats carry up/down, latency and quality counts', () => {
    cms.feed('bloomberg-bpipe', 'bloomberg').heartbeat({ up: true, latencyMs: 12.5, messages: 48211, missingFields: 3, invalidValues: 1 });
    cms.feed('refinitiv-elektron', 'refinitiv').heartbeat({ up: false, stalenessS: 90, messages: 0 });
    const pts = points(cms.drainToJson());
    assert.deepEqual(named(pts, 'cms.feed.up').map((p) => p.value), ['1', '0']);
    assert.equal(named(pts, 'cms.feed.latency')[0].value, 12.5);
    assert.equal(named(pts, 'cms.feed.missing_fields')[0].value, '3');
    assert.equal(named(pts, 'cms.feed.staleness')[0].value, 90);
    assert.equal(named(pts, 'cms.feed.messages')[0].point.startTimeUnixNano, String(clock.now() - 60_000_000_000n));
  });

  test('custom metrics are prefixed and typed', () => {
    cms.gauge('orders.open', 42, { attributes: { desk: 'rates' } });
    cms.counter('trades', 7, { attributes: { lot: 100, ratio: 0.25, partial: false } });
    const [g, c] = points(cms.drainToJson());
    assert.equal(g.metric, 'cms.app.orders.open');
    assert.equal(g.point.asDouble, 42);
    assert.equal(c.value, '7');
    assert.deepEqual(c.attrs, { lot: '100', ratio: 0.25, partial: false });
  });

  test('bad input never throws and is counted as invalid', () => {
    cms.gauge('x', NaN);
    cms.counter('y', -1);
    cms.gauge(null, 1);
    const run = cms.startRun({ job: 'no-asset-class' });
    run.startStage({ name: 's' }).records(1).finish();
    run.fail(undefined);
    cms.feed(null).heartbeat({ up: true });
    cms.feed('f', 'p').heartbeat({ up: true, latencyMs: Infinity });
    assert.equal(cms.stats().invalid, 6);
    assert.equal(points(cms.drainToJson()).length, 0);
  });

  test('stats count calls and their overhead', () => {
    for (let i = 0; i < 10; i++) cms.gauge('g', i);
    const s = cms.stats();
    assert.equal(s.calls, 10);
    assert.equal(s.queueSize, 10);
    assert.ok(s.avgCallOverheadUs > 0);
    assert.ok(s.maxCallOverheadUs >= s.avgCallOverheadUs);
  });
});
