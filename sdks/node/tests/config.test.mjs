import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { createClient, parsePairs, resolveConfig } from '../src/index.js';
import { points, silent, tempDir } from './helpers.mjs';

const PROFILES = {
  default_profile: 'dev',
  profiles: {
    dev: { endpoint: 'http://127.0.0.1:4318', service_name: 'pricing-dev' },
    prod: { endpoint: 'https://cms.example.internal:4318/', service_name: 'pricing', headers: { authorization: 'Bearer prod-key' }, max_queue_size: 4096, spool_dir: 'off', self_metrics: true },
  },
};

function profileFile() {
  const file = join(tempDir(), 'cms-sdk.json');
  writeFileSync(file, JSON.stringify(PROFILES));
  return file;
}

test('defaults without any configuration', () => {
  const c = resolveConfig({ env: {} });
  assert.equal(c.metricsUrl, 'http://127.0.0.1:4318/v1/metrics');
  assert.equal(c.serviceName, 'unknown_service');
  assert.equal(c.environment, 'dev');
  assert.deepEqual(c.headers, {});
  assert.equal(c.maxQueueSize, 2048);
  assert.match(c.spoolDir, /cms-sdk-spool/);
  assert.equal(c.profile, null);
});

test('standard OTel variables and CMS_ENVIRONMENT', () => {
  const c = resolveConfig({
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc+def, x-team = rates',
      OTEL_SERVICE_NAME: 'fx-rates',
      CMS_ENVIRONMENT: 'staging',
      CMS_MAX_QUEUE_SIZE: '100',
    },
  });
  assert.equal(c.metricsUrl, 'http://collector:4318/v1/metrics');
  assert.equal(c.headers.authorization, 'Bearer abc+def');
  assert.equal(c.headers['x-team'], 'rates');
  assert.equal(c.serviceName, 'fx-rates');
  assert.equal(c.environment, 'staging');
  assert.equal(c.maxQueueSize, 100);
});

test('the resource keeps service.name when OTEL_RESOURCE_ATTRIBUTES repeats it', () => {
  const cms = createClient({ env: { OTEL_SERVICE_NAME: 'real', OTEL_RESOURCE_ATTRIBUTES: 'service.name=other,team=rates' }, backgroundExport: false, exitHandler: false, logger: silent });
  cms.gauge('g', 1);
  const res = JSON.parse(cms.drainToJson()).resourceMetrics[0].resource.attributes;
  const attrs = Object.fromEntries(res.map((a) => [a.key, a.value.stringValue]));
  assert.equal(attrs['service.name'], 'real');
  assert.equal(attrs.team, 'rates');
  assert.equal(attrs['telemetry.sdk.language'], 'nodejs');
  assert.equal(attrs['telemetry.sdk.name'], 'cms-sdk');
});

test('the metrics endpoint is used as is', () => {
  const c = resolveConfig({ env: { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://gw:9999/custom/path', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://ignored:4318' } });
  assert.equal(c.metricsUrl, 'http://gw:9999/custom/path');
});

test('a profile chosen by CMS_PROFILE, overridden by environment variables', () => {
  const file = profileFile();
  const prod = resolveConfig({ env: { CMS_CONFIG_FILE: file, CMS_PROFILE: 'prod' } });
  assert.equal(prod.profile, 'prod');
  assert.equal(prod.environment, 'prod');
  assert.equal(prod.metricsUrl, 'https://cms.example.internal:4318/v1/metrics');
  assert.equal(prod.headers.authorization, 'Bearer prod-key');
  assert.equal(prod.maxQueueSize, 4096);
  assert.equal(prod.spoolDir, null);
  assert.equal(prod.selfMetrics, true);
  const overridden = resolveConfig({ env: { CMS_CONFIG_FILE: file, CMS_PROFILE: 'prod', OTEL_SERVICE_NAME: 'from-env', OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer env-key' } });
  assert.equal(overridden.serviceName, 'from-env');
  assert.equal(overridden.headers.authorization, 'Bearer env-key');
  const dflt = resolveConfig({ env: { CMS_CONFIG_FILE: file } });
  assert.equal(dflt.profile, 'dev');
  assert.equal(dflt.serviceName, 'pricing-dev');
});

test('explicit options win over everything', () => {
  const c = resolveConfig({ env: { OTEL_SERVICE_NAME: 'env-name', CMS_ENVIRONMENT: 'staging' }, configFile: profileFile(), profile: 'prod', serviceName: 'code-name', environment: 'demo', apiKey: 'k1' });
  assert.equal(c.serviceName, 'code-name');
  assert.equal(c.environment, 'demo');
  assert.equal(c.headers.authorization, 'Bearer k1');
});

test('configuration errors say what to fix', () => {
  const file = profileFile();
  assert.throws(() => resolveConfig({ env: { CMS_CONFIG_FILE: file, CMS_PROFILE: 'qa' } }), /no profile 'qa'.*dev, prod/);
  assert.throws(() => resolveConfig({ env: { CMS_MAX_QUEUE_SIZE: 'lots' } }), /CMS_MAX_QUEUE_SIZE/);
  assert.throws(() => resolveConfig({ env: { CMS_CONFIG_FILE: join(tempDir(), 'nope.json') } }), /CMS_CONFIG_FILE/);
  assert.throws(() => resolveConfig({ env: { OTEL_EXPORTER_OTLP_HEADERS: 'authorization' } }), /key=value/);
  assert.throws(() => resolveConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' } }), /http:\/\//);
});

test('header pairs are URL-decoded', () => {
  assert.deepEqual(parsePairs('a%20b=c%3Dd,,x=y', 'test'), { 'a b': 'c=d', x: 'y' });
  assert.equal(points(createClient({ env: {}, backgroundExport: false, exitHandler: false }).drainToJson()).length, 0);
});
