package io.cms.sdk;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The CMS business-metrics client: batch runs, their sub-stages, market-data feed heartbeats and custom
 * gauges/counters, exported as OTLP/HTTP JSON by a background thread.
 *
 * <pre>{@code
 * try (CmsClient cms = CmsClient.fromEnvironment();
 *      BatchRun run = cms.startRun("derivatives", "eod_valuation")) {
 *     try (Stage s = run.stage("validation", "validation", List.of("ingest"))) { s.records(123); }
 *     run.records(125_000).bytes(52_428_800);
 * }
 * }</pre>
 *
 * No method of a built client throws or blocks the caller: problems are counted in {@link #stats()}
 * and logged (java.util.logging, logger {@code io.cms.sdk}).
 */
public final class CmsClient implements AutoCloseable {
    public static final String VERSION = "0.1.0";
    static final Set<String> ASSET_CLASSES = Set.of("equities", "fixed_income", "derivatives", "fx", "commodities");
    private static final List<String> ASSET_CLASS_ORDER =
            List.of("equities", "fixed_income", "derivatives", "fx", "commodities");

    /** The body of {@link #run}: gets the started run; an exception from it fails the run and propagates. */
    @FunctionalInterface
    public interface RunBody<E extends Exception> {
        void accept(BatchRun run) throws E;
    }

    private final Config config;
    private final Clock clock;
    final Exporter exporter;
    private final Thread hook;
    private volatile boolean closed;

    private CmsClient(Builder b) {
        this.config = new Config(b.explicit, b.env, b.configFile, b.profile);
        this.clock = b.clock != null ? b.clock : Clock.system();
        List<Point.Attr> resource = new ArrayList<>();
        resource.add(new Point.Attr("service.name", config.serviceName));
        if (config.serviceVersion != null && !config.serviceVersion.isEmpty()) {
            resource.add(new Point.Attr("service.version", config.serviceVersion));
        }
        resource.add(new Point.Attr("cms.environment", config.environment));
        resource.add(new Point.Attr("telemetry.sdk.name", "cms-sdk"));
        resource.add(new Point.Attr("telemetry.sdk.language", "java"));
        resource.add(new Point.Attr("telemetry.sdk.version", VERSION));
        for (Map.Entry<String, String> e : config.resourceAttributes.entrySet()) {
            boolean taken = false;
            for (Point.Attr a : resource) {
                taken |= a.key.equals(e.getKey());
            }
            if (!taken) {
                resource.add(new Point.Attr(e.getKey(), e.getValue()));
            }
        }
        Transport transport = b.transport != null ? b.transport
                : new HttpTransport(config.metricsUrl, config.headers, config.timeoutMs, config.gzip);
        this.exporter = new Exporter(config, transport, Collections.unmodifiableList(resource), clock, b.sleeper);
        if (b.background) {
            exporter.start();
        }
        if (b.shutdownHook) {
            hook = new Thread(() -> exporter.close(5000), "cms-sdk-shutdown");
            Runtime.getRuntime().addShutdownHook(hook);
        } else {
            hook = null;
        }
    }

    /** A builder; values not set come from the environment, then the config-file profile, then defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** A client configured from OTEL_* / CMS_* environment variables and the optional CMS_CONFIG_FILE profile. */
    public static CmsClient fromEnvironment() {
        return builder().build();
    }

    public Config config() {
        return config;
    }

    long now() {
        return clock.nowNanos();
    }

    // ---------------------------------------------------------------- batch runs

    /** Starts a batch run now, with the default run id {@code <asset_class>.<job>.<start time>}. */
    public BatchRun startRun(String assetClass, String job) {
        return startRun(assetClass, job, null, (String) null);
    }

    /**
     * Starts a batch run now.
     *
     * @param runId          unique id of this run, or null for the default
     * @param scheduledStart when the run was scheduled (ISO-8601 UTC text, sent as given), or null
     */
    public BatchRun startRun(String assetClass, String job, String runId, String scheduledStart) {
        return guard(() -> {
            if (assetClass == null || job == null) {
                exporter.invalid("startRun needs an asset class and a job");
                return BatchRun.inert(this);
            }
            if (!ASSET_CLASSES.contains(assetClass)) {
                exporter.warn("asset:" + assetClass, "cms-sdk: asset class '" + assetClass + "' is not one of "
                        + String.join(", ", ASSET_CLASS_ORDER) + "; the receiver will reject these points");
            }
            return new BatchRun(this, assetClass, job, runId, scheduledStart, now());
        }, () -> BatchRun.inert(this));
    }

    /** Starts a batch run now; {@code scheduledStart} is sent as {@code YYYY-MM-DDTHH:MM:SS.mmmZ}. */
    public BatchRun startRun(String assetClass, String job, String runId, Instant scheduledStart) {
        return startRun(assetClass, job, runId,
                scheduledStart == null ? null : Times.formatMillis(Times.toNanos(scheduledStart)));
    }

    /**
     * Runs {@code body} as a batch run: success when it returns, failed with the exception's simple class
     * name as {@code cms.error_type} when it throws (the exception propagates unchanged).
     */
    public <E extends Exception> void run(String assetClass, String job, RunBody<E> body) throws E {
        try (BatchRun run = startRun(assetClass, job)) {
            try {
                body.accept(run);
            } catch (Exception | Error e) {
                run.fail(e);
                throw e;
            }
        }
    }

    // ---------------------------------------------------------------- feeds and custom metrics

    /** A market-data feed handle, e.g. {@code feed("bloomberg-bpipe", "bloomberg")}. */
    public Feed feed(String feedId, String provider) {
        return new Feed(this, feedId, provider);
    }

    /** A custom gauge {@code cms.app.<name>} (unit 1) now. */
    public void gauge(String name, double value) {
        gauge(name, value, "1", null, null);
    }

    public void gauge(String name, double value, Map<String, ?> attributes) {
        gauge(name, value, "1", attributes, null);
    }

    public void gauge(String name, double value, String unit, Map<String, ?> attributes) {
        gauge(name, value, unit, attributes, null);
    }

    /** A custom gauge at {@code time} (null = now); the name gets the prefix {@code cms.app.} if missing. */
    public void gauge(String name, double value, String unit, Map<String, ?> attributes, Instant time) {
        guard(() -> {
            if (name == null || name.isEmpty() || !Double.isFinite(value)) {
                exporter.invalid("gauge needs a name and a finite value");
                return null;
            }
            long t = time == null ? now() : Times.toNanos(time);
            exporter.enqueue(Point.ofDouble(appName(name), unitOr(unit), false, Point.attrsOf(attributes), 0, t, value));
            return null;
        }, () -> null);
    }

    /** Adds {@code increment} to the custom counter {@code cms.app.<name>} (a delta, monotonic sum). */
    public void counter(String name, long increment) {
        counter(name, (double) increment, "1", null, null, null);
    }

    public void counter(String name, long increment, Map<String, ?> attributes) {
        counter(name, (double) increment, "1", attributes, null, null);
    }

    public void counter(String name, double increment, String unit, Map<String, ?> attributes) {
        counter(name, increment, unit, attributes, null, null);
    }

    /**
     * Adds {@code increment} (integral values are sent as ints) over the interval {@code startTime}..{@code time}
     * (null = now; a null start time means the point's time).
     */
    public void counter(String name, double increment, String unit, Map<String, ?> attributes,
                        Instant startTime, Instant time) {
        guard(() -> {
            if (name == null || name.isEmpty() || !Double.isFinite(increment) || increment < 0) {
                exporter.invalid("counter needs a name and a finite, non-negative increment");
                return null;
            }
            long t = time == null ? now() : Times.toNanos(time);
            long s = startTime == null ? t : Times.toNanos(startTime);
            exporter.enqueue(Point.ofNumber(appName(name), unitOr(unit), true, Point.attrsOf(attributes), s, t, increment));
            return null;
        }, () -> null);
    }

    // ---------------------------------------------------------------- lifecycle

    /** Exports everything queued; true when done within {@code timeoutMs}. */
    public boolean flush(long timeoutMs) {
        return exporter.flush(timeoutMs);
    }

    public Stats stats() {
        return exporter.stats();
    }

    /**
     * Removes every queued point and returns them as one OTLP/JSON ExportMetricsServiceRequest, without
     * sending: for tests of application code and the conformance runner (use with backgroundExport(false)).
     */
    public String drainToJson() {
        return exporter.drain();
    }

    /** Flushes (up to 5 s) and stops the worker; what could not be delivered goes to the spool. */
    @Override
    public void close() {
        close(5000);
    }

    public void close(long timeoutMs) {
        if (closed) {
            return;
        }
        closed = true;
        exporter.close(timeoutMs);
        if (hook != null) {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running or about to
            }
        }
    }

    // ---------------------------------------------------------------- internals

    void emit(Point p) {
        exporter.enqueue(p);
    }

    /** Runs an API call: measures its overhead and turns any internal error into a count. */
    <T> T guard(Supplier<T> body, Supplier<T> fallback) {
        long t0 = System.nanoTime();
        try {
            return body.get();
        } catch (RuntimeException e) {
            exporter.internalError(e);
            return fallback.get();
        } finally {
            exporter.recordCall(System.nanoTime() - t0);
        }
    }

    static String appName(String name) {
        return name.startsWith("cms.app.") ? name : "cms.app." + name;
    }

    private static String unitOr(String unit) {
        return unit == null || unit.isEmpty() ? "1" : unit;
    }

    static String errorType(Throwable t) {
        if (t == null) {
            return "Error";
        }
        String n = t.getClass().getSimpleName();
        return n.isEmpty() ? t.getClass().getName() : n;
    }

    /** Builds a {@link CmsClient}. Explicit values win over environment variables and config-file profiles. */
    public static final class Builder {
        final Map<String, Object> explicit = new HashMap<>();
        Map<String, String> env = System.getenv();
        Path configFile;
        String profile;
        Clock clock;
        Transport transport;
        Exporter.Sleeper sleeper;
        boolean background = true;
        boolean shutdownHook = true;

        private Builder() {
        }

        /** Base URL; {@code /v1/metrics} is appended (like OTEL_EXPORTER_OTLP_ENDPOINT). */
        public Builder endpoint(String baseUrl) { explicit.put("endpoint", baseUrl); return this; }
        /** Full metrics URL, used as is (like OTEL_EXPORTER_OTLP_METRICS_ENDPOINT). */
        public Builder metricsEndpoint(String url) { explicit.put("metrics_endpoint", url); return this; }

        @SuppressWarnings("unchecked")
        public Builder header(String name, String value) {
            ((Map<String, String>) explicit.computeIfAbsent("headers", k -> new LinkedHashMap<String, String>())).put(name, value);
            return this;
        }

        /** Adds {@code authorization: Bearer <apiKey>}. */
        public Builder apiKey(String apiKey) { return header("authorization", "Bearer " + apiKey); }
        public Builder serviceName(String name) { explicit.put("service_name", name); return this; }
        public Builder serviceVersion(String version) { explicit.put("service_version", version); return this; }
        /** dev, staging, prod or demo (the resource attribute cms.environment). */
        public Builder environment(String environment) { explicit.put("environment", environment); return this; }

        @SuppressWarnings("unchecked")
        public Builder resourceAttribute(String key, String value) {
            ((Map<String, String>) explicit.computeIfAbsent("resource_attributes", k -> new LinkedHashMap<String, String>())).put(key, value);
            return this;
        }

        public Builder configFile(Path file) { this.configFile = file; return this; }
        public Builder profile(String name) { this.profile = name; return this; }
        /** Reads settings from this map instead of the process environment. */
        public Builder env(Map<String, String> variables) { this.env = new HashMap<>(variables); return this; }
        /** Ignores environment variables (and CMS_CONFIG_FILE). */
        public Builder ignoreEnvironment() { this.env = Collections.emptyMap(); return this; }
        public Builder clock(Clock c) { this.clock = c; return this; }
        public Builder transport(Transport t) { this.transport = t; return this; }
        public Builder spoolDir(Path dir) { explicit.put("spool_dir", dir.toString()); return this; }
        /** Turns spooling off: undeliverable points are dropped and counted. */
        public Builder noSpool() { explicit.put("spool_dir", "off"); return this; }
        public Builder spoolMaxBytes(long bytes) { explicit.put("spool_max_bytes", bytes); return this; }
        public Builder maxQueueSize(int points) { explicit.put("max_queue_size", points); return this; }
        public Builder maxBatchSize(int points) { explicit.put("max_batch_size", points); return this; }
        public Builder exportIntervalMs(long ms) { explicit.put("export_interval_ms", ms); return this; }
        public Builder timeoutMs(long ms) { explicit.put("timeout_ms", ms); return this; }
        public Builder maxRetries(int n) { explicit.put("max_retries", n); return this; }
        public Builder initialBackoffMs(long ms) { explicit.put("initial_backoff_ms", ms); return this; }
        public Builder maxBackoffMs(long ms) { explicit.put("max_backoff_ms", ms); return this; }
        /** gzip or none. */
        public Builder compression(String c) { explicit.put("compression", c); return this; }
        /** Also exports cms.app.sdk.* gauges about the SDK itself every 10 s. */
        public Builder selfMetrics(boolean on) { explicit.put("self_metrics", on); return this; }
        /** False: no worker thread; points stay queued until flush(), close() or drainToJson(). */
        public Builder backgroundExport(boolean on) { this.background = on; return this; }
        /** False: no JVM shutdown hook (then call close() yourself). */
        public Builder shutdownHook(boolean on) { this.shutdownHook = on; return this; }

        Builder sleeper(Exporter.Sleeper s) { this.sleeper = s; return this; }

        /** Builds the client; throws IllegalArgumentException, saying what to fix, on a bad configuration. */
        public CmsClient build() {
            return new CmsClient(this);
        }
    }
}
