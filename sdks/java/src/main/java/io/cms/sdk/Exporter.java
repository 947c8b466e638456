package io.cms.sdk;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The bounded queue and the background worker that batches points into OTLP requests, retries them,
 * spools what cannot be delivered and replays the spool. Nothing here throws into the caller.
 */
final class Exporter {
    /** How the worker waits between retries (replaced in tests to record the waits). */
    interface Sleeper {
        void sleep(long ms) throws InterruptedException;
    }

    private enum Kind { DELIVERED, REJECTED, TOO_LARGE, RETRY_LATER }

    private static final class Outcome {
        final Kind kind;
        final long delayMs;

        Outcome(Kind kind, long delayMs) {
            this.kind = kind;
            this.delayMs = delayMs;
        }
    }

    private static final Logger LOG = Logger.getLogger("io.cms.sdk");
    private static final long SELF_METRICS_EVERY_NS = 10_000_000_000L;
    private static final long LOG_EVERY_NS = 10_000_000_000L;

    private final Transport transport;
    private final Spool spool;
    private final List<Point.Attr> resource;
    private final Clock clock;
    private final Sleeper sleeper;
    private final ArrayBlockingQueue<Point> queue;
    private final int capacity;
    private final int maxBatch;
    private final long intervalMs;
    private final int maxRetries;
    private final long initialBackoffMs;
    private final long maxBackoffMs;
    private final boolean selfMetrics;

    private final ReentrantLock exportLock = new ReentrantLock();
    private final Object signal = new Object();
    private long flushRequested;
    private long flushCompleted;
    private volatile boolean wakePending;
    private volatile boolean closing;
    private volatile boolean closed;
    private volatile long closeDeadline;
    private Thread worker;

    // delivery state, guarded by exportLock
    private boolean down;
    private long nextReplayAt;
    private int replayFailures;
    private long lastSelfMetricsAt = System.nanoTime();

    private final AtomicLong enqueued = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong invalid = new AtomicLong();
    private final AtomicLong exportedPoints = new AtomicLong();
    private final AtomicLong exportRequests = new AtomicLong();
    private final AtomicLong failedRequests = new AtomicLong();
    private final AtomicLong retries = new AtomicLong();
    private final AtomicLong rejected = new AtomicLong();
    private final AtomicLong spooledFiles = new AtomicLong();
    private final AtomicLong spooledPoints = new AtomicLong();
    private final AtomicLong replayedFiles = new AtomicLong();
    private final AtomicLong spoolPending = new AtomicLong();
    private final AtomicLong calls = new AtomicLong();
    private final AtomicLong callNanos = new AtomicLong();
    private final AtomicLong maxCallNanos = new AtomicLong();
    private final AtomicLong latencyCount = new AtomicLong();
    private final AtomicLong latencyTotalNanos = new AtomicLong();
    private final AtomicLong maxLatencyNanos = new AtomicLong();
    private volatile long lastLatencyNanos;
    private volatile String lastError;
    private final Map<String, Long> lastLogged = new ConcurrentHashMap<>();

    Exporter(Config cfg, Transport transport, List<Point.Attr> resource, Clock clock, Sleeper sleeper) {
        this.transport = transport;
        this.spool = cfg.spoolDir == null ? null : new Spool(cfg.spoolDir, cfg.spoolMaxBytes);
        this.resource = resource;
        this.clock = clock;
        this.sleeper = sleeper != null ? sleeper : Thread::sleep;
        this.capacity = cfg.maxQueueSize;
        this.queue = new ArrayBlockingQueue<>(cfg.maxQueueSize);
        this.maxBatch = cfg.maxBatchSize;
        this.intervalMs = cfg.exportIntervalMs;
        this.maxRetries = cfg.maxRetries;
        this.initialBackoffMs = cfg.initialBackoffMs;
        this.maxBackoffMs = cfg.maxBackoffMs;
        this.selfMetrics = cfg.selfMetrics;
        if (spool != null) {
            spoolPending.set(spool.pending().size());
        }
    }

    void start() {
        worker = new Thread(this::loop, "cms-sdk-exporter");
        worker.setDaemon(true);
        worker.start();
    }

    // ---------------------------------------------------------------- producer side

    /** Never blocks: a full queue drops the point and counts it. */
    void enqueue(Point p) {
        if (closed || !queue.offer(p)) {
            dropped.incrementAndGet();
            warn("dropped", "cms-sdk: queue full (" + capacity + " points) or client closed: points dropped; "
                    + "raise CMS_MAX_QUEUE_SIZE or check the endpoint");
            return;
        }
        enqueued.incrementAndGet();
        if (worker != null && !wakePending && queue.size() >= maxBatch) {
            wakePending = true;
            synchronized (signal) {
                signal.notifyAll();
            }
        }
    }

    void invalid(String why) {
        invalid.incrementAndGet();
        warn("invalid:" + why, "cms-sdk: call ignored: " + why);
    }

    void recordCall(long nanos) {
        calls.incrementAndGet();
        callNanos.addAndGet(nanos);
        maxCallNanos.accumulateAndGet(nanos, Math::max);
    }

    void internalError(RuntimeException e) {
        lastError = "internal: " + e;
        warn("internal", "cms-sdk: internal error (ignored, please report): " + e);
    }

    /** Removes every queued point and returns them as one request (for tests and conformance runners). */
    String drain() {
        List<Point> all = new ArrayList<>();
        queue.drainTo(all);
        return OtlpJson.request(resource, all);
    }

    // ---------------------------------------------------------------- worker side

    private void loop() {
        while (true) {
            long seq;
            synchronized (signal) {
                if (!closing && flushRequested == flushCompleted && queue.size() < maxBatch) {
                    try {
                        signal.wait(intervalMs);
                    } catch (InterruptedException e) {
                        // closing
                    }
                }
                seq = flushRequested;
                wakePending = false;
            }
            boolean last = closing;
            try {
                cycle();
            } catch (RuntimeException e) {
                internalError(e);
            }
            synchronized (signal) {
                flushCompleted = Math.max(flushCompleted, seq);
                signal.notifyAll();
            }
            if (last) {
                return;
            }
        }
    }

    /** One export round: self-metrics, every queued point in batches, then the spool if due. */
    void cycle() {
        exportLock.lock();
        try {
            maybeSelfMetrics();
            while (true) {
                List<Point> batch = new ArrayList<>(Math.min(maxBatch, queue.size() + 1));
                if (queue.drainTo(batch, maxBatch) == 0) {
                    break;
                }
                exportBatch(batch);
            }
            maybeReplay();
        } finally {
            exportLock.unlock();
        }
    }

    boolean flush(long timeoutMs) {
        if (worker == null) {
            cycle();
            return queue.isEmpty();
        }
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        synchronized (signal) {
            long mine = ++flushRequested;
            signal.notifyAll();
            while (flushCompleted < mine) {
                long left = deadline - System.nanoTime();
                if (left <= 0 || !worker.isAlive()) {
                    return false;
                }
                try {
                    signal.wait(Math.max(1, left / 1_000_000L));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
        }
        return true;
    }

    /** Flushes within {@code timeoutMs}; whatever is not delivered by then goes to the spool. */
    void close(long timeoutMs) {
        if (closed) {
            return;
        }
        closeDeadline = System.nanoTime() + timeoutMs * 1_000_000L;
        closing = true;
        if (worker != null) {
            synchronized (signal) {
                signal.notifyAll();
            }
            try {
                worker.join(Math.max(1, timeoutMs));
                if (worker.isAlive()) {
                    worker.interrupt();
                    worker.join(2000);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        } else {
            cycle();
        }
        closed = true;
        List<Point> rest = new ArrayList<>();
        queue.drainTo(rest);
        for (int k = 0; k < rest.size(); k += maxBatch) {
            List<Point> part = rest.subList(k, Math.min(rest.size(), k + maxBatch));
            toSpool(OtlpJson.request(resource, part), part.size(), "client closed before delivery");
        }
    }

    private void exportBatch(List<Point> batch) {
        String body = OtlpJson.request(resource, batch);
        int n = batch.size();
        if (down) {
            toSpool(body, n, "endpoint down");
            return;
        }
        Outcome o = send(body, n, true);
        switch (o.kind) {
            case DELIVERED:
                exportedPoints.addAndGet(n);
                if (spoolPending.get() > 0) {
                    nextReplayAt = 0;
                }
                break;
            case TOO_LARGE:
                if (n > 1) {
                    exportBatch(new ArrayList<>(batch.subList(0, n / 2)));
                    exportBatch(new ArrayList<>(batch.subList(n / 2, n)));
                } else {
                    rejected.incrementAndGet();
                }
                break;
            case REJECTED:
                rejected.addAndGet(n);
                break;
            default:
                toSpool(body, n, lastError);
                down = true;
                replayFailures = 1;
                nextReplayAt = System.nanoTime() + Math.max(o.delayMs, backoffMs(0)) * 1_000_000L;
        }
    }

    private void toSpool(String body, int n, String why) {
        if (spool == null) {
            dropped.addAndGet(n);
            warn("nospool", "cms-sdk: could not deliver " + n + " points (" + why + ") and spooling is off: dropped");
            return;
        }
        try {
            if (spool.write(body, n, clock.nowNanos())) {
                spooledFiles.incrementAndGet();
                spooledPoints.addAndGet(n);
                spoolPending.incrementAndGet();
                warn("spooled", "cms-sdk: endpoint unavailable (" + why + "): requests spooled to " + spool.dir()
                        + " for replay");
                return;
            }
            warn("spoolfull", "cms-sdk: spool " + spool.dir() + " is full (CMS_SPOOL_MAX_BYTES): points dropped");
        } catch (IOException e) {
            warn("spoolio", "cms-sdk: cannot write spool " + spool.dir() + ": " + e + ": points dropped");
        }
        dropped.addAndGet(n);
    }

    private void maybeReplay() {
        if (spool == null || spoolPending.get() == 0 || System.nanoTime() < nextReplayAt) {
            return;
        }
        List<Path> files = spool.pending();
        for (Path f : files) {
            if (closing && System.nanoTime() > closeDeadline) {
                break;
            }
            String body;
            try {
                body = Spool.read(f);
            } catch (IOException e) {
                continue;
            }
            int n = Spool.pointsOf(f);
            Outcome o = send(body, n, false);
            if (o.kind == Kind.DELIVERED) {
                Spool.delete(f);
                replayedFiles.incrementAndGet();
                exportedPoints.addAndGet(n);
                down = false;
                replayFailures = 0;
                nextReplayAt = 0;
            } else if (o.kind == Kind.RETRY_LATER) {
                down = true;
                long wait = Math.max(o.delayMs, backoffMs(replayFailures));
                replayFailures = Math.min(replayFailures + 1, 30);
                nextReplayAt = System.nanoTime() + wait * 1_000_000L;
                break;
            } else {
                LOG.warning("cms-sdk: spooled request " + f + " refused by the endpoint (" + lastError
                        + "); kept as " + f.getFileName() + ".rejected");
                Spool.reject(f);
                rejected.addAndGet(n);
            }
        }
        spoolPending.set(spool.pending().size());
    }

    private Outcome send(String body, int n, boolean allowRetry) {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        for (int attempt = 0; ; attempt++) {
            long t0 = System.nanoTime();
            Transport.Response resp = null;
            String err = null;
            try {
                resp = transport.send(bytes);
            } catch (IOException | RuntimeException e) {
                err = e.getClass().getSimpleName() + (e.getMessage() != null ? ": " + e.getMessage() : "");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                lastError = "interrupted while sending";
                return new Outcome(Kind.RETRY_LATER, 0);
            }
            recordLatency(System.nanoTime() - t0);
            exportRequests.incrementAndGet();
            if (resp != null && resp.status / 100 == 2) {
                partialSuccess(resp.body);
                return new Outcome(Kind.DELIVERED, 0);
            }
            failedRequests.incrementAndGet();
            if (resp != null) {
                lastError = "HTTP " + resp.status + (resp.body.isEmpty() ? "" : ": " + clip(resp.body));
                if (resp.status == 413) {
                    warn("413", "cms-sdk: endpoint says request too large (413); splitting the batch");
                    return new Outcome(Kind.TOO_LARGE, 0);
                }
                if (!retryable(resp.status)) {
                    String hint = resp.status == 401 || resp.status == 403
                            ? " (check OTEL_EXPORTER_OTLP_HEADERS, e.g. authorization=Bearer <key>)" : "";
                    warn("http" + resp.status, "cms-sdk: endpoint refused " + n + " points: " + lastError + hint);
                    return new Outcome(Kind.REJECTED, 0);
                }
            } else {
                lastError = err;
            }
            long after = resp == null ? -1 : retryAfterMs(resp.retryAfter);
            long delay = after >= 0 ? after : backoffMs(attempt);
            boolean pastDeadline = closing && System.nanoTime() + delay * 1_000_000L > closeDeadline;
            if (!allowRetry || attempt >= maxRetries || delay > maxBackoffMs || pastDeadline
                    || Thread.currentThread().isInterrupted()) {
                return new Outcome(Kind.RETRY_LATER, delay);
            }
            retries.incrementAndGet();
            try {
                sleeper.sleep(delay);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return new Outcome(Kind.RETRY_LATER, delay);
            }
        }
    }

    static boolean retryable(int status) {
        return status == 429 || status >= 500;
    }

    /** Exponential backoff {@code min(max, initial * 2^n)} scaled by a jitter factor in [0.5, 1]. */
    long backoffMs(int n) {
        double base = Math.min((double) maxBackoffMs, initialBackoffMs * Math.pow(2, Math.min(n, 30)));
        return (long) (base * (0.5 + 0.5 * ThreadLocalRandom.current().nextDouble()));
    }

    /** Retry-After in milliseconds (delta seconds, possibly fractional, or an HTTP date); -1 when absent. */
    static long retryAfterMs(String header) {
        if (header == null || header.trim().isEmpty()) {
            return -1;
        }
        String h = header.trim();
        try {
            double secs = Double.parseDouble(h);
            return secs < 0 || Double.isNaN(secs) ? -1 : (long) Math.ceil(secs * 1000);
        } catch (NumberFormatException notSeconds) {
            try {
                long at = ZonedDateTime.parse(h, DateTimeFormatter.RFC_1123_DATE_TIME).toInstant().toEpochMilli();
                return Math.max(0, at - System.currentTimeMillis());
            } catch (RuntimeException notDate) {
                return -1;
            }
        }
    }

    @SuppressWarnings("unchecked")
    private void partialSuccess(String body) {
        if (body == null || body.isEmpty() || body.charAt(0) != '{') {
            return;
        }
        try {
            Object doc = Json.parse(body);
            Object ps = doc instanceof Map ? ((Map<String, Object>) doc).get("partialSuccess") : null;
            if (!(ps instanceof Map)) {
                return;
            }
            Object r = ((Map<String, Object>) ps).get("rejectedDataPoints");
            long n = r == null ? 0 : Long.parseLong(String.valueOf(r));
            Object msg = ((Map<String, Object>) ps).get("errorMessage");
            if (n > 0) {
                rejected.addAndGet(n);
                lastError = "partialSuccess: " + n + " points rejected: " + msg;
                warn("partial", "cms-sdk: endpoint rejected " + n + " points: " + msg);
            }
        } catch (RuntimeException ignored) {
            // a body we do not understand is still a 2xx
        }
    }

    private void recordLatency(long nanos) {
        lastLatencyNanos = nanos;
        latencyCount.incrementAndGet();
        latencyTotalNanos.addAndGet(nanos);
        maxLatencyNanos.accumulateAndGet(nanos, Math::max);
    }

    private void maybeSelfMetrics() {
        if (!selfMetrics || System.nanoTime() - lastSelfMetricsAt < SELF_METRICS_EVERY_NS) {
            return;
        }
        lastSelfMetricsAt = System.nanoTime();
        Stats s = stats();
        long t = clock.nowNanos();
        List<Point.Attr> none = Collections.emptyList();
        queue.offer(Point.ofDouble("cms.app.sdk.queue_size", "{point}", false, none, 0, t, s.queueSize()));
        queue.offer(Point.ofDouble("cms.app.sdk.dropped", "{point}", false, none, 0, t, s.dropped()));
        queue.offer(Point.ofDouble("cms.app.sdk.export_latency", "ms", false, none, 0, t, s.lastExportLatencyMs()));
        queue.offer(Point.ofDouble("cms.app.sdk.call_overhead", "us", false, none, 0, t, s.avgCallOverheadUs()));
    }

    void warn(String key, String msg) {
        long now = System.nanoTime();
        Long last = lastLogged.get(key);
        if (last == null || now - last > LOG_EVERY_NS) {
            lastLogged.put(key, now);
            LOG.log(Level.WARNING, msg);
        }
    }

    private static String clip(String s) {
        String t = s.replaceAll("\\s+", " ").trim();
        return t.length() > 300 ? t.substring(0, 300) + "..." : t;
    }

    Stats stats() {
        Map<String, Object> m = new LinkedHashMap<>();
        long lc = latencyCount.get();
        long c = calls.get();
        m.put("queue_size", (long) queue.size());
        m.put("queue_capacity", (long) capacity);
        m.put("enqueued", enqueued.get());
        m.put("dropped", dropped.get());
        m.put("invalid", invalid.get());
        m.put("exported_points", exportedPoints.get());
        m.put("export_requests", exportRequests.get());
        m.put("failed_requests", failedRequests.get());
        m.put("retries", retries.get());
        m.put("rejected", rejected.get());
        m.put("spooled_files", spooledFiles.get());
        m.put("spooled_points", spooledPoints.get());
        m.put("replayed_files", replayedFiles.get());
        m.put("spool_pending", spoolPending.get());
        m.put("last_export_latency_ms", lastLatencyNanos / 1e6);
        m.put("avg_export_latency_ms", lc == 0 ? 0.0 : latencyTotalNanos.get() / 1e6 / lc);
        m.put("max_export_latency_ms", maxLatencyNanos.get() / 1e6);
        m.put("calls", c);
        m.put("avg_call_overhead_us", c == 0 ? 0.0 : callNanos.get() / 1e3 / c);
        m.put("max_call_overhead_us", maxCallNanos.get() / 1e3);
        m.put("last_error", lastError);
        return new Stats(m);
    }
}
