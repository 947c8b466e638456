package io.cms.sdk;

import java.util.LinkedHashMap;
import java.util.Map;

/** A snapshot of the SDK's self-metrics: its queue, deliveries, spool and performance impact. */
public final class Stats {
    private final Map<String, Object> values;

    Stats(Map<String, Object> values) {
        this.values = values;
    }

    private long l(String k) {
        return ((Number) values.get(k)).longValue();
    }

    private double d(String k) {
        return ((Number) values.get(k)).doubleValue();
    }

    /** Points waiting in the queue. */
    public long queueSize() { return l("queue_size"); }
    public long queueCapacity() { return l("queue_capacity"); }
    /** Points accepted onto the queue. */
    public long enqueued() { return l("enqueued"); }
    /** Points dropped because the queue was full or the spool could not take them. */
    public long dropped() { return l("dropped"); }
    /** Calls ignored because a value was not finite, a counter went down, or an argument was missing. */
    public long invalid() { return l("invalid"); }
    /** Points acknowledged by the endpoint (including replayed ones). */
    public long exportedPoints() { return l("exported_points"); }
    /** HTTP requests made. */
    public long exportRequests() { return l("export_requests"); }
    /** Requests that did not get a 2xx. */
    public long failedRequests() { return l("failed_requests"); }
    public long retries() { return l("retries"); }
    /** Points the endpoint refused (non-retryable 4xx, partialSuccess, too large). */
    public long rejected() { return l("rejected"); }
    public long spooledFiles() { return l("spooled_files"); }
    public long spooledPoints() { return l("spooled_points"); }
    public long replayedFiles() { return l("replayed_files"); }
    /** Files waiting in the spool directory now. */
    public long spoolPending() { return l("spool_pending"); }
    public double lastExportLatencyMs() { return d("last_export_latency_ms"); }
    public double avgExportLatencyMs() { return d("avg_export_latency_ms"); }
    public double maxExportLatencyMs() { return d("max_export_latency_ms"); }
    /** API calls made by the application. */
    public long calls() { return l("calls"); }
    /** Mean time an API call spent in the SDK, in microseconds. */
    public double avgCallOverheadUs() { return d("avg_call_overhead_us"); }
    public double maxCallOverheadUs() { return d("max_call_overhead_us"); }
    /** The last delivery problem, or null. */
    public String lastError() { return (String) values.get("last_error"); }

    /** All values under their snake_case names (as in the other SDKs). */
    public Map<String, Object> asMap() {
        return new LinkedHashMap<>(values);
    }

    @Override
    public String toString() {
        return "Stats" + values;
    }
}
