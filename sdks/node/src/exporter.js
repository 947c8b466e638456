// The bounded queue and the background worker: batches points into OTLP requests, retries them,
// spools what cannot be delivered and replays the spool. Nothing here throws into the caller.

import { readFile } from 'node:fs/promises';

import { encodeRequest, makePoint } from './otlp.js';
import { Spool } from './spool.js';

const SELF_METRICS_EVERY_MS = 10_000;
const LOG_EVERY_MS = 10_000;

const defaultSleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** Retry-After in milliseconds (delta seconds, possibly fractional, or an HTTP date); -1 when absent. */
export function retryAfterMs(header) {
  if (header === null || header === undefined || String(header).trim() === '') return -1;
  const h = String(header).trim();
  if (/^\d+(\.\d+)?$/.test(h)) return Math.ceil(Number(h) * 1000);
  const at = Date.parse(h);
  return Number.isNaN(at) ? -1 : Math.max(0, at - Date.now());
}

export const isRetryable = (status) => status === 429 || status >= 500;

export class Exporter {
  constructor(cfg, { transport, resource, clock, sleep, logger }) {
    this.transport = transport;
    this.resource = resource;
    this.clock = clock;
    this.sleep = sleep ?? defaultSleep;
    this.logger = logger ?? console;
    this.spool = cfg.spoolDir ? new Spool(cfg.spoolDir, cfg.spoolMaxBytes) : null;
    this.capacity = cfg.maxQueueSize;
    this.maxBatch = cfg.maxBatchSize;
    this.intervalMs = cfg.exportIntervalMs;
    this.maxRetries = cfg.maxRetries;
    this.initialBackoffMs = cfg.initialBackoffMs;
    this.maxBackoffMs = cfg.maxBackoffMs;
    this.selfMetrics = cfg.selfMetrics;
    this.queue = [];
    this.inflight = new Set();
    this.cycling = null;
    this.timer = null;
    this.wakeScheduled = false;
    this.closing = false;
    this.closed = false;
    this.closeDeadline = 0;
    this.down = false;
    this.nextReplayAt = 0;
    this.replayFailures = 0;
    this.lastSelfMetricsAt = Date.now();
    this.lastLogged = new Map();
    this.s = {
      enqueued: 0, dropped: 0, invalid: 0, exportedPoints: 0, exportRequests: 0, failedRequests: 0,
      retries: 0, rejected: 0, spooledFiles: 0, spooledPoints: 0, replayedFiles: 0, spoolPending: 0,
      calls: 0, callNs: 0n, maxCallNs: 0n, latencyCount: 0, latencyTotalMs: 0, maxLatencyMs: 0, lastLatencyMs: 0,
      lastError: null,
    };
    if (this.spool) this.s.spoolPending = this.spool.pending().length;
  }

  start() {
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  // ------------------------------------------------------------ producer side

  /** Never blocks: a full queue drops the point and counts it. */
  enqueue(p) {
    if (this.closed || this.queue.length >= this.capacity) {
      this.s.dropped += 1;
      this.warn('dropped', `cms-sdk: queue full (${this.capacity} points) or client closed: points dropped; raise CMS_MAX_QUEUE_SIZE or check the endpoint`);
      return;
    }
    this.queue.push(p);
    this.s.enqueued += 1;
    if (this.timer && !this.wakeScheduled && this.queue.length >= this.maxBatch) {
      this.wakeScheduled = true;
      setImmediate(() => {
        this.wakeScheduled = false;
        this.tick();
      }).unref();
    }
  }

  invalid(why) {
    this.s.invalid += 1;
    this.warn(`invalid:${why}`, `cms-sdk: call ignored: ${why}`);
  }

  recordCall(ns) {
    this.s.calls += 1;
    this.s.callNs += ns;
    if (ns > this.s.maxCallNs) this.s.maxCallNs = ns;
  }

  internalError(e) {
    this.s.lastError = `internal: ${e}`;
    this.warn('internal', `cms-sdk: internal error (ignored, please report): ${e?.stack ?? e}`);
  }

  /** Removes every queued point and returns them as one request JSON, without sending. */
  drain() {
    return encodeRequest(this.resource, this.queue.splice(0));
  }

  // ------------------------------------------------------------ worker side

  tick() {
    if (!this.cycling) this.cycle();
  }

  /** One export round (self-metrics, all queued points, the spool if due); concurrent calls share it. */
  cycle() {
    if (this.cycling) return this.cycling;
    this.cycling = (async () => {
      try {
        this.maybeSelfMetrics();
        while (this.queue.length > 0) {
          await this.exportBatch(this.queue.splice(0, this.maxBatch));
        }
        await this.maybeReplay();
      } catch (e) {
        this.internalError(e);
      } finally {
        this.cycling = null;
      }
    })();
    return this.cycling;
  }

  /** Exports everything queued; resolves true when done within timeoutMs. */
  async flush(timeoutMs = 10_000) {
    let timer;
    // A ref'd timer: a caller awaiting flush() keeps the process alive until it settles or times out.
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const work = (async () => {
      if (this.cycling) await this.cycling;
      await this.cycle();
      return this.queue.length === 0;
    })();
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Flushes within timeoutMs, stops the worker and spools whatever was not delivered. */
  async shutdown(timeoutMs = 5000) {
    if (this.closed) return;
    this.closing = true;
    this.closeDeadline = Date.now() + timeoutMs;
    if (this.timer) clearInterval(this.timer);
    await this.flush(timeoutMs);
    this.closed = true;
    this.spoolRemaining('client closed before delivery');
  }

  /** Synchronously spools the queue and unacknowledged in-flight requests (process exit). */
  spoolRemaining(why) {
    for (const req of this.inflight) this.toSpool(req.body, req.n, why);
    this.inflight.clear();
    while (this.queue.length > 0) {
      const part = this.queue.splice(0, this.maxBatch);
      this.toSpool(encodeRequest(this.resource, part), part.length, why);
    }
  }

  async exportBatch(batch) {
    const body = encodeRequest(this.resource, batch);
    const n = batch.length;
    if (this.down) {
      this.toSpool(body, n, 'endpoint down');
      return;
    }
    const req = { body, n };
    this.inflight.add(req);
    const o = await this.send(body, n, true);
    if (!this.inflight.delete(req)) return; // already spooled by the exit handler
    if (o.kind === 'delivered') {
      this.s.exportedPoints += n;
      if (this.s.spoolPending > 0) this.nextReplayAt = 0;
    } else if (o.kind === 'too_large') {
      if (n > 1) {
        const half = Math.floor(n / 2);
        await this.exportBatch(batch.slice(0, half));
        await this.exportBatch(batch.slice(half));
      } else {
        this.s.rejected += 1;
      }
    } else if (o.kind === 'rejected') {
      this.s.rejected += n;
    } else {
      this.toSpool(body, n, this.s.lastError);
      this.down = true;
      this.replayFailures = 1;
      this.nextReplayAt = Date.now() + Math.max(o.delayMs, this.backoffMs(0));
    }
  }

  toSpool(body, n, why) {
    if (!this.spool) {
      this.s.dropped += n;
      this.warn('nospool', `cms-sdk: could not deliver ${n} points (${why}) and spooling is off: dropped`);
      return;
    }
    try {
      if (this.spool.write(body, n, this.clock())) {
        this.s.spooledFiles += 1;
        this.s.spooledPoints += n;
        this.s.spoolPending += 1;
        this.warn('spooled', `cms-sdk: endpoint unavailable (${why}): requests spooled to ${this.spool.dir} for replay`);
        return;
      }
      this.warn('spoolfull', `cms-sdk: spool ${this.spool.dir} is full (CMS_SPOOL_MAX_BYTES): points dropped`);
    } catch (e) {
      this.warn('spoolio', `cms-sdk: cannot write spool ${this.spool.dir}: ${e.message}: points dropped`);
    }
    this.s.dropped += n;
  }

  async maybeReplay() {
    if (!this.spool || this.s.spoolPending === 0 || Date.now() < this.nextReplayAt) return;
    for (const f of this.spool.pending()) {
      if (this.closing && Date.now() > this.closeDeadline) break;
      let body;
      try {
        body = await readFile(f, 'utf8');
      } catch {
        continue;
      }
      const n = Spool.pointsOf(f);
      const o = await this.send(body, n, false);
      if (o.kind === 'delivered') {
        Spool.delete(f);
        this.s.replayedFiles += 1;
        this.s.exportedPoints += n;
        this.down = false;
        this.replayFailures = 0;
        this.nextReplayAt = 0;
      } else if (o.kind === 'retry_later') {
        this.down = true;
        const wait = Math.max(o.delayMs, this.backoffMs(this.replayFailures));
        this.replayFailures = Math.min(this.replayFailures + 1, 30);
        this.nextReplayAt = Date.now() + wait;
        break;
      } else {
        this.logger.warn(`cms-sdk: spooled request ${f} refused by the endpoint (${this.s.lastError}); kept as ${f}.rejected`);
        Spool.reject(f);
        this.s.rejected += n;
      }
    }
    this.s.spoolPending = this.spool.pending().length;
  }

  async send(body, n, allowRetry) {
    for (let attempt = 0; ; attempt++) {
      const t0 = process.hrtime.bigint();
      let resp = null;
      let err = null;
      try {
        resp = await this.transport(body);
      } catch (e) {
        err = `${e?.code ?? e?.name ?? 'Error'}: ${e?.message ?? e}`;
      }
      this.recordLatency(Number(process.hrtime.bigint() - t0) / 1e6);
      this.s.exportRequests += 1;
      if (resp && resp.status >= 200 && resp.status < 300) {
        this.partialSuccess(resp.body);
        return { kind: 'delivered' };
      }
      this.s.failedRequests += 1;
      if (resp) {
        const text = String(resp.body ?? '').replace(/\s+/g, ' ').trim();
        this.s.lastError = `HTTP ${resp.status}${text ? `: ${text.slice(0, 300)}` : ''}`;
        if (resp.status === 413) {
          this.warn('413', 'cms-sdk: endpoint says request too large (413); splitting the batch');
          return { kind: 'too_large' };
        }
        if (!isRetryable(resp.status)) {
          const hint = resp.status === 401 || resp.status === 403
            ? ' (check OTEL_EXPORTER_OTLP_HEADERS, e.g. authorization=Bearer <key>)' : '';
          this.warn(`http${resp.status}`, `cms-sdk: endpoint refused ${n} points: ${this.s.lastError}${hint}`);
          return { kind: 'rejected' };
        }
      } else {
        this.s.lastError = err;
      }
      const after = resp ? retryAfterMs(resp.retryAfter) : -1;
      const delayMs = after >= 0 ? after : this.backoffMs(attempt);
      const pastDeadline = this.closing && Date.now() + delayMs > this.closeDeadline;
      if (!allowRetry || attempt >= this.maxRetries || delayMs > this.maxBackoffMs || pastDeadline) {
        return { kind: 'retry_later', delayMs };
      }
      this.s.retries += 1;
      await this.sleep(delayMs);
    }
  }

  /** Exponential backoff min(max, initial * 2^n) scaled by a jitter factor in [0.5, 1]. */
  backoffMs(n) {
    const base = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** Math.min(n, 30));
    return Math.floor(base * (0.5 + 0.5 * Math.random()));
  }

  partialSuccess(body) {
    if (!body || body[0] !== '{') return;
    try {
      const ps = JSON.parse(body)?.partialSuccess;
      const n = Number(ps?.rejectedDataPoints ?? 0);
      if (n > 0) {
        this.s.rejected += n;
        this.s.lastError = `partialSuccess: ${n} points rejected: ${ps.errorMessage}`;
        this.warn('partial', `cms-sdk: endpoint rejected ${n} points: ${ps.errorMessage}`);
      }
    } catch {
      // a body we do not understand is still a 2xx
    }
  }

  recordLatency(ms) {
    this.s.lastLatencyMs = ms;
    this.s.latencyCount += 1;
    this.s.latencyTotalMs += ms;
    if (ms > this.s.maxLatencyMs) this.s.maxLatencyMs = ms;
  }

  maybeSelfMetrics() {
    if (!this.selfMetrics || Date.now() - this.lastSelfMetricsAt < SELF_METRICS_EVERY_MS) return;
    this.lastSelfMetricsAt = Date.now();
    const st = this.stats();
    const t = this.clock();
    const g = (name, unit, v) => {
      if (this.queue.length < this.capacity) this.queue.push(makePoint(name, unit, false, [], null, t, v, true));
    };
    g('cms.app.sdk.queue_size', '{point}', st.queueSize);
    g('cms.app.sdk.dropped', '{point}', st.dropped);
    g('cms.app.sdk.export_latency', 'ms', st.lastExportLatencyMs);
    g('cms.app.sdk.call_overhead', 'us', st.avgCallOverheadUs);
  }

  warn(key, msg) {
    const now = Date.now();
    const last = this.lastLogged.get(key);
    if (last === undefined || now - last > LOG_EVERY_MS) {
      this.lastLogged.set(key, now);
      this.logger.warn(msg);
    }
  }

  stats() {
    const s = this.s;
    return {
      queueSize: this.queue.length,
      queueCapacity: this.capacity,
      enqueued: s.enqueued,
      dropped: s.dropped,
      invalid: s.invalid,
      exportedPoints: s.exportedPoints,
      exportRequests: s.exportRequests,
      failedRequests: s.failedRequests,
      retries: s.retries,
      rejected: s.rejected,
      spooledFiles: s.spooledFiles,
      spooledPoints: s.spooledPoints,
      replayedFiles: s.replayedFiles,
      spoolPending: s.spoolPending,
      lastExportLatencyMs: s.lastLatencyMs,
      avgExportLatencyMs: s.latencyCount ? s.latencyTotalMs / s.latencyCount : 0,
      maxExportLatencyMs: s.maxLatencyMs,
      calls: s.calls,
      avgCallOverheadUs: s.calls ? Number(s.callNs) / 1e3 / s.calls : 0,
      maxCallOverheadUs: Number(s.maxCallNs) / 1e3,
      lastError: s.lastError,
    };
  }
}
