// Configuration: explicit options > environment variables > config-file profile > defaults.

import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** camelCase option, config-file key, environment variable, kind, default. */
const SETTINGS = [
  ['endpoint', 'endpoint', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'string', 'http://127.0.0.1:4318'],
  ['metricsEndpoint', 'metrics_endpoint', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'string', null],
  ['serviceName', 'service_name', 'OTEL_SERVICE_NAME', 'string', 'unknown_service'],
  ['serviceVersion', 'service_version', null, 'string', null],
  ['environment', 'environment', 'CMS_ENVIRONMENT', 'string', null],
  ['timeoutMs', 'timeout_ms', 'OTEL_EXPORTER_OTLP_TIMEOUT', 'int', 10000],
  ['compression', 'compression', 'OTEL_EXPORTER_OTLP_COMPRESSION', 'string', 'none'],
  ['spoolDir', 'spool_dir', 'CMS_SPOOL_DIR', 'string', null],
  ['spoolMaxBytes', 'spool_max_bytes', 'CMS_SPOOL_MAX_BYTES', 'int', 64 * 1024 * 1024],
  ['maxQueueSize', 'max_queue_size', 'CMS_MAX_QUEUE_SIZE', 'int', 2048],
  ['maxBatchSize', 'max_batch_size', 'CMS_MAX_BATCH_SIZE', 'int', 512],
  ['exportIntervalMs', 'export_interval_ms', 'CMS_EXPORT_INTERVAL_MS', 'int', 1000],
  ['maxRetries', 'max_retries', 'CMS_MAX_RETRIES', 'int', 5],
  ['initialBackoffMs', 'initial_backoff_ms', 'CMS_INITIAL_BACKOFF_MS', 'int', 500],
  ['maxBackoffMs', 'max_backoff_ms', 'CMS_MAX_BACKOFF_MS', 'int', 30000],
  ['selfMetrics', 'self_metrics', 'CMS_SDK_SELF_METRICS', 'bool', false],
];

const nonEmpty = (s) => typeof s === 'string' && s.trim() !== '';

/** Parses `k=v,k2=v2` with URL-decoded keys and values (the OpenTelemetry environment-variable format). */
export function parsePairs(text, what) {
  const out = {};
  if (!nonEmpty(text)) return out;
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new Error(`${what} entry '${part.trim()}' is not key=value (example: authorization=Bearer%20KEY,x-team=rates)`);
    }
    out[decode(part.slice(0, eq).trim())] = decode(part.slice(eq + 1).trim());
  }
  return out;
}

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function readProfileFile(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read config file ${file} (${e.message}); check CMS_CONFIG_FILE`);
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`config file ${file} is not valid JSON: ${e.message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new Error(`config file ${file} must hold a JSON object with "profiles"`);
  }
  const profiles = doc.profiles ?? {};
  if (typeof profiles !== 'object' || Array.isArray(profiles)) {
    throw new Error(`config file ${file}: "profiles" must be an object of name -> settings`);
  }
  return { doc, profiles };
}

function safeName(name) {
  const s = String(name).replace(/[^A-Za-z0-9._-]/g, '_');
  return s || 'default';
}

/**
 * Resolves the client configuration. `options.env` replaces process.env (pass {} to ignore it).
 * Throws an Error saying what to fix on a bad setting.
 */
export function resolveConfig(options = {}) {
  const env = options.env ?? process.env;
  const file = options.configFile ?? (nonEmpty(env.CMS_CONFIG_FILE) ? env.CMS_CONFIG_FILE : null);
  let chosen = options.profile ?? env.CMS_PROFILE;
  let prof = {};
  let profile = null;
  if (file) {
    const { doc, profiles } = readProfileFile(file);
    if (!nonEmpty(chosen) && typeof doc.default_profile === 'string') chosen = doc.default_profile;
    if (!nonEmpty(chosen) && nonEmpty(env.CMS_ENVIRONMENT) && profiles[env.CMS_ENVIRONMENT]) chosen = env.CMS_ENVIRONMENT;
    if (nonEmpty(chosen)) {
      const p = profiles[chosen];
      if (!p || typeof p !== 'object') {
        throw new Error(`config file ${file} has no profile '${chosen}' (profiles: ${Object.keys(profiles).join(', ')}); set CMS_PROFILE to one of them`);
      }
      prof = p;
      profile = chosen;
    }
  } else if (nonEmpty(options.profile)) {
    throw new Error(`profile '${options.profile}' asked for but no config file given; set CMS_CONFIG_FILE or the configFile option`);
  }

  const cfg = { profile };
  for (const [opt, key, envName, kind, dflt] of SETTINGS) {
    let value;
    let where;
    if (options[opt] !== undefined && options[opt] !== null) {
      value = options[opt];
      where = `option ${opt}`;
    } else if (envName && nonEmpty(env[envName])) {
      value = env[envName].trim();
      where = `environment variable ${envName}`;
    } else if (prof[key] !== undefined && prof[key] !== null) {
      value = prof[key];
      where = `config-file key ${key} of profile ${profile}`;
    } else {
      cfg[opt] = dflt;
      continue;
    }
    if (kind === 'int') {
      const n = typeof value === 'number' ? value : Number(String(value).trim());
      if (!Number.isInteger(n)) throw new Error(`${where} is '${value}': expected a whole number`);
      value = n;
    } else if (kind === 'bool') {
      const t = String(value).trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(t)) value = true;
      else if (['false', '0', 'no', 'off'].includes(t)) value = false;
      else throw new Error(`${where} is '${value}': expected true or false`);
    } else {
      value = String(value);
    }
    cfg[opt] = value;
  }
  cfg.environment = cfg.environment ?? profile ?? 'dev';
  cfg.metricsUrl = nonEmpty(cfg.metricsEndpoint) ? cfg.metricsEndpoint : `${cfg.endpoint.trim().replace(/\/+$/, '')}/v1/metrics`;
  if (!/^https?:\/\//.test(cfg.metricsUrl)) {
    throw new Error(`endpoint '${cfg.metricsUrl}' must start with http:// or https:// (set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318)`);
  }
  const comp = cfg.compression.toLowerCase();
  if (!['gzip', 'none', ''].includes(comp)) throw new Error(`compression '${comp}' is not supported; use gzip or none`);
  cfg.gzip = comp === 'gzip';
  const spool = cfg.spoolDir;
  if (!nonEmpty(spool)) cfg.spoolDir = join(tmpdir(), 'cms-sdk-spool', safeName(cfg.serviceName));
  else if (['off', 'none'].includes(spool.toLowerCase())) cfg.spoolDir = null;
  cfg.maxQueueSize = Math.max(1, cfg.maxQueueSize);
  cfg.maxBatchSize = Math.max(1, cfg.maxBatchSize);
  cfg.exportIntervalMs = Math.max(1, cfg.exportIntervalMs);
  cfg.maxRetries = Math.max(0, cfg.maxRetries);
  cfg.initialBackoffMs = Math.max(0, cfg.initialBackoffMs);
  cfg.maxBackoffMs = Math.max(cfg.initialBackoffMs, cfg.maxBackoffMs);

  cfg.headers = {
    ...objectOf(prof.headers, 'headers'),
    ...parsePairs(env.OTEL_EXPORTER_OTLP_HEADERS, 'OTEL_EXPORTER_OTLP_HEADERS'),
    ...parsePairs(env.OTEL_EXPORTER_OTLP_METRICS_HEADERS, 'OTEL_EXPORTER_OTLP_METRICS_HEADERS'),
    ...objectOf(options.headers, 'headers'),
  };
  if (nonEmpty(options.apiKey)) cfg.headers.authorization = `Bearer ${options.apiKey}`;
  cfg.resourceAttributes = {
    ...objectOf(prof.resource_attributes, 'resource_attributes'),
    ...parsePairs(env.OTEL_RESOURCE_ATTRIBUTES, 'OTEL_RESOURCE_ATTRIBUTES'),
    ...objectOf(options.resourceAttributes, 'resourceAttributes'),
  };
  return cfg;
}

function objectOf(o, what) {
  if (o === undefined || o === null) return {};
  if (typeof o !== 'object' || Array.isArray(o)) throw new Error(`"${what}" must be an object of name -> value`);
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]));
}
