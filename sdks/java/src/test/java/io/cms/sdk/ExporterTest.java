package io.cms.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExporterTest {
    @TempDir
    Path tmp;

    private final List<Long> sleeps = Collections.synchronizedList(new ArrayList<>());

    private CmsClient.Builder client(String endpoint) {
        return CmsClient.builder().ignoreEnvironment().endpoint(endpoint).serviceName("svc").environment("dev")
                .spoolDir(tmp.resolve("spool")).shutdownHook(false).exportIntervalMs(50)
                .initialBackoffMs(100).maxBackoffMs(1000).maxRetries(3)
                .sleeper(ms -> sleeps.add(ms));
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private List<Path> spoolFiles() throws IOException {
        Path dir = tmp.resolve("spool");
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".json")).sorted().collect(Collectors.toList());
        }
    }

    @Test
    void retriesA503HonouringRetryAfterThenDelivers() throws Exception {
        try (StandIn server = new StandIn().then(503, "1", "busy")) {
            try (CmsClient cms = client(server.endpoint()).build()) {
                cms.gauge("g", 1);
                assertTrue(cms.flush(10_000));
                assertEquals(List.of(1000L), sleeps);
                assertEquals(2, server.requests.size());
                assertEquals(server.requests.get(0).body, server.requests.get(1).body);
                assertEquals("/v1/metrics", server.requests.get(1).path);
                assertEquals("application/json", server.requests.get(1).header("Content-Type"));
                Stats s = cms.stats();
                assertEquals(1, s.retries());
                assertEquals(1, s.exportedPoints());
                assertEquals(0, s.spooledFiles());
            }
        }
    }

    @Test
    void spoolsInsteadOfWaitingWhenRetryAfterExceedsTheBackoffCapAndReplaysLater() throws Exception {
        try (StandIn server = new StandIn().then(429, "1.5", "slow down")) {
            try (CmsClient cms = client(server.endpoint()).build()) {
                cms.gauge("g", 1);
                assertTrue(cms.flush(10_000));
                assertTrue(sleeps.isEmpty(), "the worker waited " + sleeps);
                assertEquals(1, cms.stats().spooledFiles());
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (cms.stats().replayedFiles() == 0 && System.nanoTime() < deadline) {
                    Thread.sleep(50);
                }
                assertEquals(1, cms.stats().replayedFiles());
                assertEquals(2, server.requests.size());
                assertTrue(spoolFiles().isEmpty());
            }
        }
    }

    @Test
    void backsOffExponentiallyWithJitterOn429And502And504() throws Exception {
        try (StandIn server = new StandIn().then(429, null, "").then(502, null, "").then(504, null, "")) {
            try (CmsClient cms = client(server.endpoint()).build()) {
                cms.counter("c", 1);
                assertTrue(cms.flush(10_000));
                assertEquals(3, sleeps.size());
                long[][] bounds = {{50, 100}, {100, 200}, {200, 400}};
                for (int i = 0; i < 3; i++) {
                    long ms = sleeps.get(i);
                    assertTrue(ms >= bounds[i][0] && ms <= bounds[i][1], "wait " + i + " was " + ms + " ms");
                }
                assertEquals(4, server.requests.size());
                assertEquals(1, cms.stats().exportedPoints());
            }
        }
    }

    @Test
    void doesNotRetryA400AndCountsThePointsAsRejected() throws Exception {
        try (StandIn server = new StandIn().then(400, null, "{\"message\":\"bad metric\"}")) {
            try (CmsClient cms = client(server.endpoint()).build()) {
                cms.gauge("a", 1);
                cms.gauge("b", 2);
                assertTrue(cms.flush(10_000));
                assertEquals(1, server.requests.size());
                assertTrue(sleeps.isEmpty());
                Stats s = cms.stats();
                assertEquals(2, s.rejected());
                assertEquals(0, s.spooledFiles());
                assertTrue(s.lastError().contains("HTTP 400"), s.lastError());
            }
            assertTrue(spoolFiles().isEmpty());
        }
    }

    @Test
    void doesNotRetryA401AndSendsTheConfiguredBearerKey() throws Exception {
        try (StandIn server = new StandIn().then(401, null, "")) {
            try (CmsClient cms = client(server.endpoint()).apiKey("k-123").compression("gzip").build()) {
                cms.gauge("a", 1);
                assertTrue(cms.flush(10_000));
                assertEquals(1, server.requests.size());
                assertEquals("Bearer k-123", server.requests.get(0).header("authorization"));
                assertEquals("gzip", server.requests.get(0).header("Content-Encoding"));
                assertEquals(1, TestJson.points(server.requests.get(0).body).size());
                assertEquals(1, cms.stats().rejected());
            }
        }
    }

    @Test
    void countsPartialSuccessRejectionsWithoutRetrying() throws Exception {
        try (StandIn server = new StandIn().then(200, null,
                "{\"partialSuccess\":{\"rejectedDataPoints\":\"1\",\"errorMessage\":\"cms.asset_class must be one of ...\"}}")) {
            try (CmsClient cms = client(server.endpoint()).build()) {
                cms.gauge("a", 1);
                cms.gauge("b", 1);
                assertTrue(cms.flush(10_000));
                Stats s = cms.stats();
                assertEquals(1, server.requests.size());
                assertEquals(1, s.rejected());
                assertEquals(2, s.exportedPoints());
                assertTrue(s.lastError().contains("cms.asset_class"));
            }
        }
    }

    @Test
    void splitsABatchTheEndpointFindsTooLarge() throws Exception {
        try (StandIn server = new StandIn()) {
            server.rule = r -> TestJson.points(r.body).size() > 2
                    ? new StandIn.Reply(413, null, "too large") : new StandIn.Reply(200, null, "");
            try (CmsClient cms = client(server.endpoint()).backgroundExport(false).build()) {
                for (int i = 0; i < 7; i++) {
                    cms.gauge("g" + i, i);
                }
                cms.flush(10_000);
                assertEquals(7, cms.stats().exportedPoints());
                assertEquals(0, cms.stats().rejected());
            }
        }
    }

    @Test
    void spoolsWhileTheEndpointIsDownAndReplaysWhenItIsBack() throws Exception {
        int port = freePort();
        try (CmsClient cms = client("http://127.0.0.1:" + port).maxRetries(1).initialBackoffMs(10).maxBackoffMs(20).build()) {
            cms.gauge("before", 1);
            assertTrue(cms.flush(10_000));
            cms.gauge("while_down", 2);
            assertTrue(cms.flush(10_000));
            Stats down = cms.stats();
            assertEquals(2, down.spooledFiles());
            assertEquals(2, down.spooledPoints());
            assertEquals(2, spoolFiles().size());
            assertEquals(0, down.exportedPoints());
            try (StandIn server = new StandIn(port)) {
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (!spoolFiles().isEmpty() && System.nanoTime() < deadline) {
                    cms.flush(10_000);
                    Thread.sleep(20);
                }
                assertTrue(spoolFiles().isEmpty(), "spool not replayed: " + spoolFiles());
                String all = String.join("\n", server.requests.stream().map(r -> r.body).collect(Collectors.toList()));
                assertTrue(all.contains("cms.app.before") && all.contains("cms.app.while_down"));
                assertEquals(2, cms.stats().replayedFiles());
            }
        }
    }

    @Test
    void replaysASpoolLeftByAnEarlierProcess() throws Exception {
        int port = freePort();
        try (CmsClient first = client("http://127.0.0.1:" + port).maxRetries(0).build()) {
            first.counter("orders", 5);
        }
        assertEquals(1, spoolFiles().size());
        try (StandIn server = new StandIn(port); CmsClient second = client(server.endpoint()).build()) {
            assertTrue(second.flush(10_000));
            assertTrue(spoolFiles().isEmpty());
            assertEquals(1, server.requests.size());
            assertTrue(server.requests.get(0).body.contains("cms.app.orders"));
            assertEquals(1, second.stats().replayedFiles());
        }
    }

    @Test
    void closeSpoolsWhatItCouldNotDeliver() throws Exception {
        int port = freePort();
        CmsClient cms = client("http://127.0.0.1:" + port).backgroundExport(false).maxRetries(0).build();
        for (int i = 0; i < 5; i++) {
            cms.gauge("g", i);
        }
        cms.close();
        List<Path> files = spoolFiles();
        assertEquals(1, files.size());
        assertEquals(5, TestJson.points(Files.readString(files.get(0))).size());
        cms.gauge("after_close", 1);
        assertEquals(1, cms.stats().dropped());
    }

    @Test
    void withoutASpoolUndeliverablePointsAreDroppedAndCounted() throws Exception {
        int port = freePort();
        try (CmsClient cms = client("http://127.0.0.1:" + port).noSpool().maxRetries(0).build()) {
            cms.gauge("g", 1);
            cms.flush(10_000);
            assertEquals(1, cms.stats().dropped());
            assertFalse(cms.stats().lastError() == null);
        }
        assertTrue(spoolFiles().isEmpty());
    }

    @Test
    void aFullQueueDropsNewPointsWithoutBlockingTheCaller() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        Transport stuck = body -> {
            release.await();
            return new Transport.Response(200, null, "");
        };
        try (CmsClient cms = CmsClient.builder().ignoreEnvironment().serviceName("svc").transport(stuck)
                .maxQueueSize(10).maxBatchSize(5).exportIntervalMs(10).shutdownHook(false).noSpool().build()) {
            assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
                for (int i = 0; i < 100; i++) {
                    cms.gauge("g", i);
                }
            });
            Stats s = cms.stats();
            assertEquals(100, s.enqueued() + s.dropped());
            assertTrue(s.dropped() >= 85, "dropped " + s.dropped());
            assertTrue(s.queueSize() <= 10);
            release.countDown();
        }
    }
}
