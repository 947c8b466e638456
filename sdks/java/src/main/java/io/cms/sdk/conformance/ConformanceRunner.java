package io.cms.sdk.conformance;

import io.cms.sdk.BatchRun;
import io.cms.sdk.CmsClient;
import io.cms.sdk.Feed;
import io.cms.sdk.Heartbeat;
import io.cms.sdk.Json;
import io.cms.sdk.ManualClock;
import io.cms.sdk.Stage;
import io.cms.sdk.Times;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Replays a conformance vector (sdks/conformance/README.md) through the public API and prints the
 * resulting ExportMetricsServiceRequest as JSON.
 *
 * <pre>java -cp sdks/java/build/classes io.cms.sdk.conformance.ConformanceRunner VECTOR.json</pre>
 */
public final class ConformanceRunner {
    private ConformanceRunner() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: ConformanceRunner VECTOR.json");
            System.exit(2);
        }
        try {
            String text = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8);
            System.out.println(run(text));
        } catch (IllegalArgumentException e) {
            System.err.println(args[0] + ": " + e.getMessage());
            System.exit(1);
        }
    }

    /** Replays the vector given as JSON text and returns the request JSON. */
    @SuppressWarnings("unchecked")
    public static String run(String vectorJson) {
        Map<String, Object> vector = (Map<String, Object>) Json.parse(vectorJson);
        Map<String, Object> res = (Map<String, Object>) vector.get("resource");
        ManualClock clock = new ManualClock(0L);
        CmsClient.Builder b = CmsClient.builder()
                .ignoreEnvironment()
                .serviceName((String) res.get("service_name"))
                .environment((String) res.get("environment"))
                .clock(clock)
                .noSpool()
                .selfMetrics(false)
                .maxQueueSize(100_000)
                .backgroundExport(false)
                .shutdownHook(false);
        if (res.get("service_version") != null) {
            b.serviceVersion((String) res.get("service_version"));
        }
        Map<String, BatchRun> runs = new HashMap<>();
        Map<String, Stage> stages = new HashMap<>();
        try (CmsClient client = b.build()) {
            for (Object o : (List<Object>) vector.get("calls")) {
                Map<String, Object> c = (Map<String, Object>) o;
                if (c.get("time") != null) {
                    clock.setNanos(Times.parseNanos((String) c.get("time")));
                }
                String op = (String) c.get("op");
                String runKey = (String) c.get("run");
                String stageKey = runKey + "\u0000" + c.get("stage");
                switch (op) {
                    case "run_start":
                        runs.put(runKey, client.startRun(str(c, "asset_class"), str(c, "job"), str(c, "run_id"),
                                str(c, "scheduled_start")));
                        break;
                    case "run_set":
                        if (c.get("records") != null) {
                            runs.get(runKey).records(lng(c, "records"));
                        }
                        if (c.get("bytes") != null) {
                            runs.get(runKey).bytes(lng(c, "bytes"));
                        }
                        break;
                    case "run_add":
                        if (c.get("records") != null) {
                            runs.get(runKey).addRecords(lng(c, "records"));
                        }
                        if (c.get("bytes") != null) {
                            runs.get(runKey).addBytes(lng(c, "bytes"));
                        }
                        break;
                    case "run_finish":
                        runs.get(runKey).finish();
                        break;
                    case "run_fail":
                        runs.get(runKey).fail(str(c, "error_type"));
                        break;
                    case "run_close":
                        runs.get(runKey).close();
                        break;
                    case "stage_start": {
                        List<String> deps = null;
                        if (c.get("depends_on") != null) {
                            deps = new ArrayList<>();
                            for (Object d : (List<Object>) c.get("depends_on")) {
                                deps.add((String) d);
                            }
                        }
                        int attempt = c.get("attempt") == null ? 0 : (int) lng(c, "attempt");
                        stages.put(stageKey, runs.get(runKey).stage(str(c, "stage"), str(c, "stage_type"), deps, attempt));
                        break;
                    }
                    case "stage_set":
                        stages.get(stageKey).records(lng(c, "records"));
                        break;
                    case "stage_add":
                        stages.get(stageKey).addRecords(lng(c, "records"));
                        break;
                    case "stage_finish":
                        stages.get(stageKey).finish();
                        break;
                    case "stage_fail":
                        stages.get(stageKey).fail(str(c, "error_type"));
                        break;
                    case "stage_close":
                        stages.get(stageKey).close();
                        break;
                    case "heartbeat": {
                        Feed feed = client.feed(str(c, "feed"), str(c, "provider"));
                        Heartbeat hb = Heartbeat.of(Boolean.TRUE.equals(c.get("up")));
                        if (c.get("latency_ms") != null) {
                            hb.latencyMs(dbl(c, "latency_ms"));
                        }
                        if (c.get("staleness_s") != null) {
                            hb.stalenessSeconds(dbl(c, "staleness_s"));
                        }
                        if (c.get("messages") != null) {
                            hb.messages(lng(c, "messages"));
                        }
                        if (c.get("missing_fields") != null) {
                            hb.missingFields(lng(c, "missing_fields"));
                        }
                        if (c.get("invalid_values") != null) {
                            hb.invalidValues(lng(c, "invalid_values"));
                        }
                        if (c.get("interval_s") != null) {
                            hb.intervalSeconds(dbl(c, "interval_s"));
                        }
                        feed.heartbeat(hb);
                        break;
                    }
                    case "gauge":
                        client.gauge(str(c, "name"), dbl(c, "value"), str(c, "unit"),
                                (Map<String, Object>) c.get("attributes"));
                        break;
                    case "counter": {
                        Instant start = c.get("start_time") == null ? null
                                : instant(Times.parseNanos(str(c, "start_time")));
                        client.counter(str(c, "name"), dbl(c, "value"), str(c, "unit"),
                                (Map<String, Object>) c.get("attributes"), start, null);
                        break;
                    }
                    default:
                        throw new IllegalArgumentException("unknown op '" + op + "'");
                }
            }
            return client.drainToJson();
        }
    }

    private static Instant instant(long nanos) {
        return Instant.ofEpochSecond(Math.floorDiv(nanos, 1_000_000_000L), Math.floorMod(nanos, 1_000_000_000L));
    }

    private static String str(Map<String, Object> c, String k) {
        Object v = c.get(k);
        return v == null ? null : String.valueOf(v);
    }

    private static long lng(Map<String, Object> c, String k) {
        return ((Number) c.get(k)).longValue();
    }

    private static double dbl(Map<String, Object> c, String k) {
        return ((Number) c.get(k)).doubleValue();
    }
}
