#!/usr/bin/env node
// Replays a conformance vector (sdks/conformance/README.md) through the public API and prints the
// resulting ExportMetricsServiceRequest as JSON:  node sdks/node/conformance.mjs VECTOR.json
import { readFileSync } from 'node:fs';

import { createClient, ManualClock, parseTime } from './src/index.js';

export function runVector(vector) {
  const res = vector.resource;
  const clock = new ManualClock(0n);
  const client = createClient({
    env: {},
    serviceName: res.service_name,
    environment: res.environment,
    serviceVersion: res.service_version ?? undefined,
    clock,
    spoolDir: 'off',
    selfMetrics: false,
    maxQueueSize: 100_000,
    backgroundExport: false,
    exitHandler: false,
    logger: { warn() {} },
  });
  const runs = new Map();
  const stages = new Map();
  const opt = (v) => (v === null ? undefined : v);
  for (const c of vector.calls) {
    if (c.time !== undefined) clock.set(parseTime(c.time));
    const run = runs.get(c.run);
    const stageKey = `${c.run}\u0000${c.stage}`;
    const stage = stages.get(stageKey);
    switch (c.op) {
      case 'run_start':
        runs.set(c.run, client.startRun({ assetClass: c.asset_class, job: c.job, runId: opt(c.run_id), scheduledStart: opt(c.scheduled_start) }));
        break;
      case 'run_set':
        if (c.records != null) run.records(c.records);
        if (c.bytes != null) run.bytes(c.bytes);
        break;
      case 'run_add':
        if (c.records != null) run.addRecords(c.records);
        if (c.bytes != null) run.addBytes(c.bytes);
        break;
      case 'run_finish': run.finish(); break;
      case 'run_fail': run.fail(c.error_type); break;
      case 'run_close': run.close(); break;
      case 'stage_start':
        stages.set(stageKey, run.startStage({ name: c.stage, type: opt(c.stage_type), dependsOn: opt(c.depends_on), attempt: opt(c.attempt) }));
        break;
      case 'stage_set': stage.records(c.records); break;
      case 'stage_add': stage.addRecords(c.records); break;
      case 'stage_finish': stage.finish(); break;
      case 'stage_fail': stage.fail(c.error_type); break;
      case 'stage_close': stage.close(); break;
      case 'heartbeat':
        client.feed(c.feed, c.provider).heartbeat({
          up: c.up, latencyMs: opt(c.latency_ms), stalenessS: opt(c.staleness_s), messages: opt(c.messages),
          missingFields: opt(c.missing_fields), invalidValues: opt(c.invalid_values), intervalS: c.interval_s ?? 60,
        });
        break;
      case 'gauge':
        client.gauge(c.name, c.value, { unit: opt(c.unit), attributes: opt(c.attributes) });
        break;
      case 'counter':
        client.counter(c.name, c.value, { unit: opt(c.unit), attributes: opt(c.attributes), startTime: c.start_time ? parseTime(c.start_time) : undefined });
        break;
      default:
        throw new Error(`unknown op '${c.op}'`);
    }
  }
  return client.drainToJson();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.length !== 3) {
    process.stderr.write('usage: node conformance.mjs VECTOR.json\n');
    process.exit(2);
  }
  try {
    process.stdout.write(`${runVector(JSON.parse(readFileSync(process.argv[2], 'utf8')))}\n`);
  } catch (e) {
    process.stderr.write(`${process.argv[2]}: ${e.message}\n`);
    process.exit(1);
  }
}
