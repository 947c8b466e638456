package io.cms.sdk;

import java.io.IOException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The resolved configuration of a client. Precedence: explicit builder values, then environment
 * variables, then the selected profile of a JSON config file, then defaults (see the README's table).
 */
public final class Config {
    /** Config-file key and environment variable of each scalar setting. */
    private static final String[][] ENV = {
        {"endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"},
        {"metrics_endpoint", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"},
        {"service_name", "OTEL_SERVICE_NAME"},
        {"environment", "CMS_ENVIRONMENT"},
        {"timeout_ms", "OTEL_EXPORTER_OTLP_TIMEOUT"},
        {"compression", "OTEL_EXPORTER_OTLP_COMPRESSION"},
        {"spool_dir", "CMS_SPOOL_DIR"},
        {"spool_max_bytes", "CMS_SPOOL_MAX_BYTES"},
        {"max_queue_size", "CMS_MAX_QUEUE_SIZE"},
        {"max_batch_size", "CMS_MAX_BATCH_SIZE"},
        {"export_interval_ms", "CMS_EXPORT_INTERVAL_MS"},
        {"max_retries", "CMS_MAX_RETRIES"},
        {"initial_backoff_ms", "CMS_INITIAL_BACKOFF_MS"},
        {"max_backoff_ms", "CMS_MAX_BACKOFF_MS"},
        {"self_metrics", "CMS_SDK_SELF_METRICS"},
    };

    final String metricsUrl;
    final Map<String, String> headers;
    final String serviceName;
    final String serviceVersion;
    final Map<String, String> resourceAttributes;
    final String environment;
    final String profile;
    final long timeoutMs;
    final boolean gzip;
    final Path spoolDir;
    final long spoolMaxBytes;
    final int maxQueueSize;
    final int maxBatchSize;
    final long exportIntervalMs;
    final int maxRetries;
    final long initialBackoffMs;
    final long maxBackoffMs;
    final boolean selfMetrics;

    private final Map<String, Object> explicit;
    private final Map<String, String> env;
    private final Map<String, Object> prof;

    @SuppressWarnings("unchecked")
    Config(Map<String, Object> explicit, Map<String, String> env, Path configFile, String profileName) {
        this.explicit = explicit;
        this.env = env;
        Path file = configFile;
        if (file == null && nonEmpty(env.get("CMS_CONFIG_FILE"))) {
            file = Paths.get(env.get("CMS_CONFIG_FILE"));
        }
        String chosen = profileName != null ? profileName : env.get("CMS_PROFILE");
        Map<String, Object> profileValues = Collections.emptyMap();
        if (file != null) {
            Map<String, Object> doc = readFile(file);
            Object profs = doc.getOrDefault("profiles", Collections.emptyMap());
            if (!(profs instanceof Map)) {
                throw new IllegalArgumentException("config file " + file + ": \"profiles\" must be an object of name -> settings");
            }
            Map<String, Object> profiles = (Map<String, Object>) profs;
            if (!nonEmpty(chosen) && doc.get("default_profile") instanceof String) {
                chosen = (String) doc.get("default_profile");
            }
            if (!nonEmpty(chosen) && nonEmpty(env.get("CMS_ENVIRONMENT")) && profiles.containsKey(env.get("CMS_ENVIRONMENT"))) {
                chosen = env.get("CMS_ENVIRONMENT");
            }
            if (nonEmpty(chosen)) {
                Object p = profiles.get(chosen);
                if (!(p instanceof Map)) {
                    throw new IllegalArgumentException("config file " + file + " has no profile '" + chosen
                            + "' (profiles: " + String.join(", ", profiles.keySet())
                            + "); set CMS_PROFILE to one of them");
                }
                profileValues = (Map<String, Object>) p;
            }
        } else if (nonEmpty(chosen) && profileName != null) {
            throw new IllegalArgumentException("profile '" + chosen + "' asked for but no config file given; "
                    + "set CMS_CONFIG_FILE or call configFile(path)");
        }
        this.prof = profileValues;
        this.profile = nonEmpty(chosen) && file != null ? chosen : null;

        String metricsEndpoint = str("metrics_endpoint", null);
        String base = str("endpoint", "http://127.0.0.1:4318");
        this.metricsUrl = nonEmpty(metricsEndpoint) ? metricsEndpoint : stripSlash(base) + "/v1/metrics";
        this.serviceName = str("service_name", "unknown_service");
        this.serviceVersion = str("service_version", null);
        this.environment = str("environment", profile != null ? profile : "dev");
        this.timeoutMs = num("timeout_ms", 10_000);
        String comp = str("compression", "none").toLowerCase(Locale.ROOT);
        if (!comp.equals("gzip") && !comp.equals("none") && !comp.isEmpty()) {
            throw new IllegalArgumentException("compression '" + comp + "' is not supported; use gzip or none");
        }
        this.gzip = comp.equals("gzip");
        String spool = str("spool_dir", null);
        if (spool == null || spool.isEmpty()) {
            this.spoolDir = Paths.get(System.getProperty("java.io.tmpdir"), "cms-sdk-spool", safe(serviceName));
        } else if (spool.equalsIgnoreCase("off") || spool.equalsIgnoreCase("none")) {
            this.spoolDir = null;
        } else {
            this.spoolDir = Paths.get(spool);
        }
        this.spoolMaxBytes = num("spool_max_bytes", 64L * 1024 * 1024);
        this.maxQueueSize = (int) Math.max(1, num("max_queue_size", 2048));
        this.maxBatchSize = (int) Math.max(1, num("max_batch_size", 512));
        this.exportIntervalMs = Math.max(1, num("export_interval_ms", 1000));
        this.maxRetries = (int) Math.max(0, num("max_retries", 5));
        this.initialBackoffMs = Math.max(0, num("initial_backoff_ms", 500));
        this.maxBackoffMs = Math.max(this.initialBackoffMs, num("max_backoff_ms", 30_000));
        this.selfMetrics = bool("self_metrics", false);

        Map<String, String> h = new LinkedHashMap<>(mapOf(prof.get("headers"), "headers"));
        h.putAll(parsePairs(env.get("OTEL_EXPORTER_OTLP_HEADERS"), "OTEL_EXPORTER_OTLP_HEADERS"));
        h.putAll(parsePairs(env.get("OTEL_EXPORTER_OTLP_METRICS_HEADERS"), "OTEL_EXPORTER_OTLP_METRICS_HEADERS"));
        h.putAll(mapOf(explicit.get("headers"), "headers"));
        this.headers = Collections.unmodifiableMap(h);

        Map<String, String> r = new LinkedHashMap<>(mapOf(prof.get("resource_attributes"), "resource_attributes"));
        r.putAll(parsePairs(env.get("OTEL_RESOURCE_ATTRIBUTES"), "OTEL_RESOURCE_ATTRIBUTES"));
        r.putAll(mapOf(explicit.get("resource_attributes"), "resource_attributes"));
        this.resourceAttributes = Collections.unmodifiableMap(r);
    }

    public String metricsUrl() { return metricsUrl; }
    public Map<String, String> headers() { return headers; }
    public String serviceName() { return serviceName; }
    public String serviceVersion() { return serviceVersion; }
    public String environment() { return environment; }
    /** The config-file profile in use, or null. */
    public String profile() { return profile; }
    public long timeoutMs() { return timeoutMs; }
    public boolean gzip() { return gzip; }
    /** The spool directory, or null when spooling is off. */
    public Path spoolDir() { return spoolDir; }
    public int maxQueueSize() { return maxQueueSize; }
    public int maxBatchSize() { return maxBatchSize; }
    public long exportIntervalMs() { return exportIntervalMs; }
    public int maxRetries() { return maxRetries; }
    public long initialBackoffMs() { return initialBackoffMs; }
    public long maxBackoffMs() { return maxBackoffMs; }
    public boolean selfMetrics() { return selfMetrics; }
    public Map<String, String> resourceAttributes() { return resourceAttributes; }

    private Object raw(String key) {
        if (explicit.get(key) != null) {
            return explicit.get(key);
        }
        for (String[] kv : ENV) {
            if (kv[0].equals(key) && nonEmpty(env.get(kv[1]))) {
                return env.get(kv[1]).trim();
            }
        }
        return prof.get(key);
    }

    private String where(String key) {
        if (explicit.get(key) != null) {
            return "builder value " + key;
        }
        for (String[] kv : ENV) {
            if (kv[0].equals(key) && nonEmpty(env.get(kv[1]))) {
                return "environment variable " + kv[1];
            }
        }
        return "config-file key " + key + (profile != null ? " of profile " + profile : "");
    }

    private String str(String key, String dflt) {
        Object v = raw(key);
        return v == null ? dflt : String.valueOf(v);
    }

    private long num(String key, long dflt) {
        Object v = raw(key);
        if (v == null) {
            return dflt;
        }
        if (v instanceof Number) {
            return ((Number) v).longValue();
        }
        try {
            return Long.parseLong(String.valueOf(v).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(where(key) + " is '" + v + "': expected a whole number");
        }
    }

    private boolean bool(String key, boolean dflt) {
        Object v = raw(key);
        if (v == null) {
            return dflt;
        }
        if (v instanceof Boolean) {
            return (Boolean) v;
        }
        String t = String.valueOf(v).trim().toLowerCase(Locale.ROOT);
        if (t.equals("true") || t.equals("1") || t.equals("yes") || t.equals("on")) {
            return true;
        }
        if (t.equals("false") || t.equals("0") || t.equals("no") || t.equals("off")) {
            return false;
        }
        throw new IllegalArgumentException(where(key) + " is '" + v + "': expected true or false");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> readFile(Path file) {
        String text;
        try {
            text = new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read config file " + file + " (" + e.getMessage()
                    + "); check CMS_CONFIG_FILE", e);
        }
        Object doc;
        try {
            doc = Json.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("config file " + file + " is not valid JSON: " + e.getMessage(), e);
        }
        if (!(doc instanceof Map)) {
            throw new IllegalArgumentException("config file " + file + " must hold a JSON object with \"profiles\"");
        }
        return (Map<String, Object>) doc;
    }

    private static Map<String, String> mapOf(Object o, String what) {
        Map<String, String> out = new LinkedHashMap<>();
        if (o == null) {
            return out;
        }
        if (!(o instanceof Map)) {
            throw new IllegalArgumentException("\"" + what + "\" must be an object of name -> value");
        }
        for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
            out.put(String.valueOf(e.getKey()), String.valueOf(e.getValue()));
        }
        return out;
    }

    /** Parses {@code k=v,k2=v2} with URL-decoded keys and values (the OTel environment-variable format). */
    public static Map<String, String> parsePairs(String text, String what) {
        Map<String, String> out = new LinkedHashMap<>();
        if (text == null || text.trim().isEmpty()) {
            return out;
        }
        for (String part : text.split(",")) {
            if (part.trim().isEmpty()) {
                continue;
            }
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException(what + " entry '" + part.trim()
                        + "' is not key=value (example: authorization=Bearer%20KEY,x-team=rates)");
            }
            String k = decode(part.substring(0, eq).trim());
            String v = decode(part.substring(eq + 1).trim());
            out.put(k, v);
        }
        return out;
    }

    private static String decode(String s) {
        try {
            return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            return s;
        }
    }

    private static String stripSlash(String s) {
        String t = s.trim();
        while (t.endsWith("/")) {
            t = t.substring(0, t.length() - 1);
        }
        return t;
    }

    private static boolean nonEmpty(String s) {
        return s != null && !s.trim().isEmpty();
    }

    static String safe(String name) {
        String s = name.replaceAll("[^A-Za-z0-9._-]", "_");
        return s.isEmpty() ? "default" : s;
    }
}
