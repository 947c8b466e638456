// The CMS business-metrics client: batch runs, sub-stages, feed heartbeats, custom gauges and counters.

import { resolveConfig } from './config.js';
import { Exporter } from './exporter.js';
import { keyValues, makePoint } from './otlp.js';
import { formatMillis, systemClock, toNanos } from './time.js';
import { httpTransport, SDK_VERSION } from './transport.js';

export const ASSET_CLASSES = ['equities', 'fixed_income', 'derivatives', 'fx', 'commodities'];

const live = new Set();
let hooksInstalled = false;

function installProcessHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Deliver what is queued when the event loop empties; spool it synchronously if the process exits first.
  process.on('beforeExit', () => {
    for (const c of live) if (c.exporter.queue.length > 0 && !c.exporter.cycling) c.exporter.cycle();
  });
  process.on('exit', () => {
    for (const c of live) c.exporter.spoolRemaining('process exited before delivery');
  });
}

/** The error type of a thrown value: err.name unless it is the generic "Error", then its class name. */
export function errorType(err) {
  if (err && typeof err === 'object') {
    if (typeof err.name === 'string' && err.name && err.name !== 'Error') return err.name;
    const ctor = err.constructor?.name;
    if (ctor && ctor !== 'Object') return ctor;
  }
  return 'Error';
}

const appName = (name) => (name.startsWith('cms.app.') ? name : `cms.app.${name}`);
const isCount = (n) => (typeof n === 'number' && Number.isFinite(n) && n >= 0) || (typeof n === 'bigint' && n >= 0n);
const asCount = (n) => (typeof n === 'bigint' ? n : Math.trunc(n));

export class CmsClient {
  /**
   * @param {object} options explicit settings (they win over environment variables and the config-file
   *   profile), plus clock, transport, logger, env, backgroundExport, exitHandler.
   */
  constructor(options = {}) {
    this.config = resolveConfig(options);
    const cfg = this.config;
    const clock = options.clock;
    this.clock = typeof clock === 'function' ? clock : clock && typeof clock.now === 'function' ? () => clock.now() : systemClock();
    const resource = [
      ['service.name', cfg.serviceName],
      ['service.version', cfg.serviceVersion || null],
      ['cms.environment', cfg.environment],
      ['telemetry.sdk.name', 'cms-sdk'],
      ['telemetry.sdk.language', 'nodejs'],
      ['telemetry.sdk.version', SDK_VERSION],
    ];
    for (const [k, v] of Object.entries(cfg.resourceAttributes)) {
      if (!resource.some(([key]) => key === k)) resource.push([k, v]);
    }
    this.exporter = new Exporter(cfg, {
      transport: options.transport ?? httpTransport(cfg.metricsUrl, cfg.headers, cfg.timeoutMs, cfg.gzip),
      resource: keyValues(resource),
      clock: this.clock,
      sleep: options.sleep,
      logger: options.logger,
    });
    if (options.backgroundExport !== false) this.exporter.start();
    if (options.exitHandler !== false) {
      installProcessHooks();
      live.add(this);
    }
  }

  /** A client configured from OTEL_* / CMS_* environment variables and the optional CMS_CONFIG_FILE profile. */
  static fromEnvironment(options = {}) {
    return new CmsClient(options);
  }

  now() {
    return this.clock();
  }

  /** Runs fn as an API call: measures the overhead, turns internal errors into counts, never throws. */
  guard(fn, fallback) {
    const t0 = process.hrtime.bigint();
    try {
      return fn();
    } catch (e) {
      this.exporter.internalError(e);
      return typeof fallback === 'function' ? fallback() : fallback;
    } finally {
      this.exporter.recordCall(process.hrtime.bigint() - t0);
    }
  }

  emit(p) {
    this.exporter.enqueue(p);
  }

  // ------------------------------------------------------------ batch runs

  /** Starts a batch run now: { assetClass, job, runId?, scheduledStart? (string sent as is, or Date) }. */
  startRun({ assetClass, job, runId, scheduledStart } = {}) {
    return this.guard(() => {
      if (!assetClass || !job) {
        this.exporter.invalid('startRun needs assetClass and job');
        return new BatchRun(this, null);
      }
      if (!ASSET_CLASSES.includes(assetClass)) {
        this.exporter.warn(`asset:${assetClass}`, `cms-sdk: asset class '${assetClass}' is not one of ${ASSET_CLASSES.join(', ')}; the receiver will reject these points`);
      }
      const sched = scheduledStart instanceof Date ? formatMillis(toNanos(scheduledStart)) : scheduledStart;
      return new BatchRun(this, { assetClass, job, runId, scheduledStart: sched, start: this.now() });
    }, () => new BatchRun(this, null));
  }

  /**
   * Runs `fn(run)` as a batch run and returns its result: success when it resolves, failed with the
   * error's type when it throws (the error is re-thrown unchanged).
   */
  async run(options, fn) {
    const run = this.startRun(options);
    try {
      const result = await fn(run);
      run.close();
      return result;
    } catch (err) {
      run.fail(err);
      throw err;
    }
  }

  // ------------------------------------------------------------ feeds and custom metrics

  /** A market-data feed handle, e.g. feed('bloomberg-bpipe', 'bloomberg'). */
  feed(feedId, provider) {
    return new Feed(this, feedId, provider);
  }

  /** A custom gauge cms.app.<name>: { unit = '1', attributes, time }. */
  gauge(name, value, { unit, attributes, time } = {}) {
    this.guard(() => {
      if (!name || typeof value !== 'number' || !Number.isFinite(value)) {
        this.exporter.invalid('gauge needs a name and a finite value');
        return;
      }
      const t = time === undefined || time === null ? this.now() : toNanos(time);
      this.emit(makePoint(appName(name), unit || '1', false, keyValues(attributes), null, t, value, true));
    });
  }

  /** Adds a non-negative increment to the counter cms.app.<name>: { unit = '1', attributes, startTime, time }. */
  counter(name, increment, { unit, attributes, startTime, time } = {}) {
    this.guard(() => {
      const ok = (typeof increment === 'number' && Number.isFinite(increment) && increment >= 0)
        || (typeof increment === 'bigint' && increment >= 0n);
      if (!name || !ok) {
        this.exporter.invalid('counter needs a name and a finite, non-negative increment');
        return;
      }
      const t = time === undefined || time === null ? this.now() : toNanos(time);
      const s = startTime === undefined || startTime === null ? t : toNanos(startTime);
      this.emit(makePoint(appName(name), unit || '1', true, keyValues(attributes), s, t, increment));
    });
  }

  // ------------------------------------------------------------ lifecycle

  /** Exports everything queued; resolves true when done within timeoutMs. */
  flush(timeoutMs = 10_000) {
    return this.exporter.flush(timeoutMs);
  }

  /** Flushes (up to timeoutMs), stops the worker and spools what could not be delivered. */
  async shutdown(timeoutMs = 5000) {
    await this.exporter.shutdown(timeoutMs);
    live.delete(this);
  }

  stats() {
    return this.exporter.stats();
  }

  /**
   * Removes every queued point and returns them as one OTLP/JSON ExportMetricsServiceRequest, without
   * sending (for tests of application code and the conformance runner; use backgroundExport: false).
   */
  drainToJson() {
    return this.exporter.drain();
  }
}

/**
 * What a run and a stage attempt share: record counts and one end, success or failure. `metric` names the
 * point family (cms.batch.run or cms.stage.run); `base` holds the attributes every point of it carries.
 */
class Span {
  constructor(client, metric) {
    this.client = client;
    this.metric = metric;
    this._records = null;
    this._bytes = null;
    this.ended = true;
    this.base = [];
  }

  /** Sets the records processed (sent when it ends). */
  records(n) {
    if (isCount(n)) this._records = asCount(n);
    else this.client.guard(() => this.client.exporter.invalid('records must be a non-negative number'));
    return this;
  }

  addRecords(n) {
    if (isCount(n)) this._records = (this._records ?? 0) + asCount(n);
    return this;
  }

  /** Ends successfully now. */
  finish() {
    this.end(null);
  }

  /** Ends now as failed: fail('Timeout') or fail(error) (its type is used). */
  fail(error) {
    this.end(typeof error === 'string' && error ? error : errorType(error));
  }

  /** Ends successfully unless it has already ended. */
  close() {
    this.end(null);
  }

  end(errorTypeName) {
    this.client.guard(() => {
      if (this.ended) return;
      this.ended = true;
      const t = this.client.now();
      const status = errorTypeName === null ? 'success' : 'failed';
      const withStatus = keyValues([...this.base, ['cms.status', status]]);
      const finished = keyValues([...this.base, ['cms.status', status], ['cms.error_type', errorTypeName ?? '']]);
      const c = this.client;
      const m = this.metric;
      c.emit(makePoint(`${m}.finished`, '{run}', true, finished, this.start, t, 1));
      c.emit(makePoint(`${m}.duration`, 's', false, withStatus, this.start, t, Number(t - this.start) / 1e9, true));
      if (this._records !== null) c.emit(makePoint(`${m}.records`, '{record}', true, withStatus, this.start, t, this._records));
      if (this._bytes !== null) c.emit(makePoint(`${m}.bytes`, 'By', true, withStatus, this.start, t, this._bytes));
    });
  }
}

/** One batch run; ends once (finish, fail, or close = success unless already ended). */
export class BatchRun extends Span {
  constructor(client, o) {
    super(client, 'cms.batch.run');
    this.attempts = new Map();
    if (!o) {
      this.ended = true;
      this.runId = '';
      this.base = [];
      this.stageBase = [];
      return;
    }
    this.ended = false;
    this.start = o.start;
    this.runId = o.runId || `${o.assetClass}.${o.job}.${formatMillis(o.start)}`;
    this.stageBase = [['cms.asset_class', o.assetClass], ['cms.job', o.job], ['cms.run_id', this.runId]];
    this.base = o.scheduledStart ? [...this.stageBase, ['cms.scheduled_start', String(o.scheduledStart)]] : this.stageBase;
    client.emit(makePoint('cms.batch.run.started', '{run}', true, keyValues(this.base), o.start, o.start, 1));
  }

  /** Sets the bytes processed by the run (sent when it ends). */
  bytes(n) {
    if (isCount(n)) this._bytes = asCount(n);
    return this;
  }

  addBytes(n) {
    if (isCount(n)) this._bytes = (this._bytes ?? 0) + asCount(n);
    return this;
  }

  /**
   * Starts the next attempt of a sub-stage: { name, type?, dependsOn? (array of stage ids), attempt? }.
   * The attempt defaults to 1 + the highest attempt of this stage so far in the run.
   */
  startStage({ name, type, dependsOn, attempt } = {}) {
    return this.client.guard(() => {
      if (!this.start && this.ended) return new Stage(this.client, null);
      if (!name) {
        this.client.exporter.invalid('stage needs a name');
        return new Stage(this.client, null);
      }
      const prev = this.attempts.get(name) ?? 0;
      const a = attempt > 0 ? attempt : prev + 1;
      this.attempts.set(name, Math.max(prev, a));
      return new Stage(this.client, { run: this, name, type, dependsOn, attempt: a, start: this.client.now() });
    }, () => new Stage(this.client, null));
  }

  /** With fn: runs `fn(stage)` as a stage attempt (success when it resolves, failed and re-thrown when it throws). Without fn: startStage. */
  stage(options, fn) {
    if (typeof fn !== 'function') return this.startStage(options);
    const stage = this.startStage(options);
    return (async () => {
      try {
        const result = await fn(stage);
        stage.close();
        return result;
      } catch (err) {
        stage.fail(err);
        throw err;
      }
    })();
  }
}

/** One attempt of a critical sub-stage; ends once, like a run. */
export class Stage extends Span {
  constructor(client, o) {
    super(client, 'cms.stage.run');
    if (!o) {
      this.ended = true;
      this.attempt = 0;
      this.base = [];
      return;
    }
    this.ended = false;
    this.start = o.start;
    this.attempt = o.attempt;
    const b = [...o.run.stageBase, ['cms.stage', o.name]];
    if (o.type !== undefined && o.type !== null) b.push(['cms.stage_type', o.type]);
    b.push(['cms.attempt', o.attempt], ['cms.retries', o.attempt - 1]);
    if (Array.isArray(o.dependsOn)) b.push(['cms.stage_depends_on', o.dependsOn.join(',')]);
    this.base = b;
    client.emit(makePoint('cms.stage.run.started', '{run}', true, keyValues(b), o.start, o.start, 1));
  }
}

/** A market-data feed: send a heartbeat every minute with its connectivity and quality figures. */
export class Feed {
  constructor(client, feedId, provider) {
    this.client = client;
    this.valid = Boolean(feedId);
    this.attrs = keyValues([['cms.feed', feedId || ''], ['cms.provider', provider ?? null]]);
  }

  /**
   * { up, latencyMs?, stalenessS?, messages?, missingFields?, invalidValues?, intervalS = 60, time? }:
   * only the figures given are sent (up always is).
   */
  heartbeat({ up, latencyMs, stalenessS, messages, missingFields, invalidValues, intervalS = 60, time } = {}) {
    this.client.guard(() => {
      const given = (v) => v !== undefined && v !== null;
      const finite = (v) => !given(v) || (typeof v === 'number' && Number.isFinite(v));
      const count = (v) => !given(v) || isCount(v);
      if (!this.valid) {
        this.client.exporter.invalid('heartbeat needs a feed id');
        return;
      }
      if (!finite(latencyMs) || !finite(stalenessS) || !count(messages) || !count(missingFields) || !count(invalidValues) || !(intervalS >= 0)) {
        this.client.exporter.invalid('heartbeat figures must be finite and counts non-negative');
        return;
      }
      const c = this.client;
      const t = given(time) ? toNanos(time) : c.now();
      const s = t - BigInt(Math.round(intervalS * 1e9));
      const a = this.attrs;
      c.emit(makePoint('cms.feed.up', '1', false, a, null, t, up ? 1 : 0));
      if (given(latencyMs)) c.emit(makePoint('cms.feed.latency', 'ms', false, a, null, t, latencyMs, true));
      if (given(stalenessS)) c.emit(makePoint('cms.feed.staleness', 's', false, a, null, t, stalenessS, true));
      if (given(messages)) c.emit(makePoint('cms.feed.messages', '{message}', true, a, s, t, asCount(messages)));
      if (given(missingFields)) c.emit(makePoint('cms.feed.missing_fields', '{field}', true, a, s, t, asCount(missingFields)));
      if (given(invalidValues)) c.emit(makePoint('cms.feed.invalid_values', '{value}', true, a, s, t, asCount(invalidValues)));
    });
  }
}

/** Creates a client; explicit options win over OTEL_* / CMS_* variables and the config-file profile. */
export function createClient(options = {}) {
  return new CmsClient(options);
}
