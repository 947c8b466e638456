package io.cms.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfigTest {
    @TempDir
    Path tmp;

    private static final String PROFILES = "{\"default_profile\": \"dev\", \"profiles\": {"
            + "\"dev\": {\"endpoint\": \"http://127.0.0.1:4318\", \"service_name\": \"pricing-dev\"},"
            + "\"prod\": {\"endpoint\": \"https://cms.example.internal:4318/\", \"service_name\": \"pricing\","
            + " \"headers\": {\"authorization\": \"Bearer prod-key\"}, \"max_queue_size\": 4096,"
            + " \"spool_dir\": \"off\", \"self_metrics\": true}}}";

    private Config config(Map<String, String> env) {
        CmsClient c = CmsClient.builder().env(env).shutdownHook(false).backgroundExport(false).build();
        c.close();
        return c.config();
    }

    @Test
    void defaultsWithoutAnyConfiguration() {
        Config c = config(Map.of());
        assertEquals("http://127.0.0.1:4318/v1/metrics", c.metricsUrl());
        assertEquals("unknown_service", c.serviceName());
        assertEquals("dev", c.environment());
        assertTrue(c.headers().isEmpty());
        assertEquals(2048, c.maxQueueSize());
        assertTrue(c.spoolDir().toString().contains("cms-sdk-spool"));
        assertNull(c.profile());
    }

    @Test
    void standardOtelVariablesAndCmsEnvironment() {
        Map<String, String> env = new HashMap<>();
        env.put("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/");
        env.put("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc+def, x-team = rates");
        env.put("OTEL_SERVICE_NAME", "fx-rates");
        env.put("CMS_ENVIRONMENT", "staging");
        env.put("OTEL_RESOURCE_ATTRIBUTES", "k8s.namespace.name=pricing,service.name=ignored");
        env.put("CMS_MAX_QUEUE_SIZE", "100");
        Config c = config(env);
        assertEquals("http://collector:4318/v1/metrics", c.metricsUrl());
        assertEquals("Bearer abc+def", c.headers().get("authorization"));
        assertEquals("rates", c.headers().get("x-team"));
        assertEquals("fx-rates", c.serviceName());
        assertEquals("staging", c.environment());
        assertEquals(100, c.maxQueueSize());
        assertEquals("pricing", c.resourceAttributes().get("k8s.namespace.name"));
    }

    @Test
    void theResourceKeepsServiceNameWhenOtelResourceAttributesRepeatsIt() {
        CmsClient c = CmsClient.builder().env(Map.of("OTEL_SERVICE_NAME", "real", "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=other,team=rates")).backgroundExport(false).shutdownHook(false).build();
        c.gauge("g", 1);
        String json = c.drainToJson();
        c.close();
        assertTrue(json.contains("{\"key\":\"service.name\",\"value\":{\"stringValue\":\"real\"}}"));
        assertTrue(json.contains("{\"key\":\"team\",\"value\":{\"stringValue\":\"rates\"}}"));
        assertTrue(!json.contains("other"));
    }

    @Test
    void metricsEndpointIsUsedAsIs() {
        Config c = config(Map.of("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://gw:9999/custom/path",
                "OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"));
        assertEquals("http://gw:9999/custom/path", c.metricsUrl());
    }

    @Test
    void profileChosenByCmsProfileAndOverriddenByEnvironment() throws Exception {
        Path file = tmp.resolve("cms-sdk.json");
        Files.writeString(file, PROFILES);
        Config prod = config(Map.of("CMS_CONFIG_FILE", file.toString(), "CMS_PROFILE", "prod"));
        assertEquals("prod", prod.profile());
        assertEquals("prod", prod.environment());
        assertEquals("https://cms.example.internal:4318/v1/metrics", prod.metricsUrl());
        assertEquals("Bearer prod-key", prod.headers().get("authorization"));
        assertEquals(4096, prod.maxQueueSize());
        assertNull(prod.spoolDir());
        assertTrue(prod.selfMetrics());

        Config overridden = config(Map.of("CMS_CONFIG_FILE", file.toString(), "CMS_PROFILE", "prod",
                "OTEL_SERVICE_NAME", "from-env", "OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer env-key"));
        assertEquals("from-env", overridden.serviceName());
        assertEquals("Bearer env-key", overridden.headers().get("authorization"));

        Config dflt = config(Map.of("CMS_CONFIG_FILE", file.toString()));
        assertEquals("dev", dflt.profile());
        assertEquals("pricing-dev", dflt.serviceName());
    }

    @Test
    void explicitBuilderValuesWinOverEverything() throws Exception {
        Path file = tmp.resolve("cms-sdk.json");
        Files.writeString(file, PROFILES);
        CmsClient c = CmsClient.builder().env(Map.of("OTEL_SERVICE_NAME", "env-name", "CMS_ENVIRONMENT", "staging"))
                .configFile(file).profile("prod").serviceName("code-name").environment("demo")
                .backgroundExport(false).shutdownHook(false).build();
        c.close();
        assertEquals("code-name", c.config().serviceName());
        assertEquals("demo", c.config().environment());
        assertEquals("Bearer prod-key", c.config().headers().get("authorization"));
    }

    @Test
    void configurationErrorsSayWhatToFix() throws Exception {
        Path file = tmp.resolve("cms-sdk.json");
        Files.writeString(file, PROFILES);
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> config(Map.of("CMS_CONFIG_FILE", file.toString(), "CMS_PROFILE", "qa")));
        assertTrue(unknown.getMessage().contains("no profile 'qa'") && unknown.getMessage().contains("dev, prod"),
                unknown.getMessage());
        IllegalArgumentException badNumber = assertThrows(IllegalArgumentException.class,
                () -> config(Map.of("CMS_MAX_QUEUE_SIZE", "lots")));
        assertTrue(badNumber.getMessage().contains("CMS_MAX_QUEUE_SIZE"), badNumber.getMessage());
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> config(Map.of("CMS_CONFIG_FILE", tmp.resolve("nope.json").toString())));
        assertTrue(missing.getMessage().contains("CMS_CONFIG_FILE"), missing.getMessage());
        IllegalArgumentException badHeader = assertThrows(IllegalArgumentException.class,
                () -> config(Map.of("OTEL_EXPORTER_OTLP_HEADERS", "authorization")));
        assertTrue(badHeader.getMessage().contains("key=value"), badHeader.getMessage());
    }

    @Test
    void headerPairsAreUrlDecoded() {
        assertEquals(Map.of("a b", "c=d", "x", "y"), Config.parsePairs("a%20b=c%3Dd,,x=y", "test"));
        assertEquals(List.of(), List.copyOf(Config.parsePairs(" ", "test").keySet()));
    }
}
