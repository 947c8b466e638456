package io.cms.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class ClientApiTest {
    private ManualClock clock;
    private CmsClient cms;

    @BeforeEach
    void setUp() {
        clock = new ManualClock(Instant.parse("2026-11-20T22:00:00Z"));
        cms = CmsClient.builder().ignoreEnvironment().serviceName("pricing").environment("prod").clock(clock)
                .backgroundExport(false).shutdownHook(false).noSpool().build();
    }

    @AfterEach
    void tearDown() {
        cms.close();
    }

    static class DataQualityError extends Exception {
        DataQualityError(String m) {
            super(m);
        }
    }

    @Test
    void tryWithResourcesRecordsSuccessWithRecordsBytesAndStage() {
        try (BatchRun run = cms.startRun("derivatives", "eod_valuation", "r-1", "2026-11-20T22:00:00Z")) {
            clock.advanceMillis(1000);
            try (Stage s = run.stage("validation", "validation", List.of("ingest"))) {
                s.records(123);
                clock.advanceMillis(500);
            }
            run.records(1000).bytes(2048);
            clock.advanceMillis(1500);
        }
        List<TestJson.P> pts = TestJson.points(cms.drainToJson());
        TestJson.P finished = TestJson.named(pts, "cms.batch.run.finished").get(0);
        assertEquals("success", finished.attr("cms.status"));
        assertEquals("", finished.attr("cms.error_type"));
        assertEquals("r-1", finished.attr("cms.run_id"));
        assertEquals("2026-11-20T22:00:00Z", finished.attr("cms.scheduled_start"));
        assertEquals("3.0", TestJson.named(pts, "cms.batch.run.duration").get(0).value());
        assertEquals("1000", TestJson.named(pts, "cms.batch.run.records").get(0).value());
        assertEquals("2048", TestJson.named(pts, "cms.batch.run.bytes").get(0).value());
        TestJson.P stage = TestJson.named(pts, "cms.stage.run.finished").get(0);
        assertEquals("ingest", stage.attr("cms.stage_depends_on"));
        assertEquals("1", stage.attr("cms.attempt"));
        assertNull(stage.attr("cms.scheduled_start"));
        assertEquals("0.5", TestJson.named(pts, "cms.stage.run.duration").get(0).value());
    }

    @Test
    void failBeforeLeavingTheBlockRecordsTheFailureOnce() {
        try (BatchRun run = cms.startRun("fx", "rates_snapshot")) {
            run.fail("UpstreamDataMissing");
        }
        List<TestJson.P> pts = TestJson.points(cms.drainToJson());
        List<TestJson.P> finished = TestJson.named(pts, "cms.batch.run.finished");
        assertEquals(1, finished.size());
        assertEquals("failed", finished.get(0).attr("cms.status"));
        assertEquals("UpstreamDataMissing", finished.get(0).attr("cms.error_type"));
        assertEquals("fx.rates_snapshot.2026-11-20T22:00:00.000Z", finished.get(0).attr("cms.run_id"));
    }

    @Test
    void runLambdaFailsWithTheExceptionClassAndRethrowsIt() {
        DataQualityError thrown = assertThrows(DataQualityError.class, () ->
                cms.run("equities", "eod_pnl", run -> {
                    run.stage("validation", "validation", List.of("ingest"), stage -> {
                        throw new DataQualityError("bad prices");
                    });
                }));
        assertEquals("bad prices", thrown.getMessage());
        List<TestJson.P> pts = TestJson.points(cms.drainToJson());
        assertEquals("DataQualityError", TestJson.named(pts, "cms.stage.run.finished").get(0).attr("cms.error_type"));
        assertEquals("DataQualityError", TestJson.named(pts, "cms.batch.run.finished").get(0).attr("cms.error_type"));
    }

    @Test
    void runLambdaWithoutExceptionSucceeds() {
        cms.run("fx", "fixing", run -> run.records(5));
        List<TestJson.P> pts = TestJson.points(cms.drainToJson());
        assertEquals("success", TestJson.named(pts, "cms.batch.run.finished").get(0).attr("cms.status"));
    }

    @Test
    void retriedStageGetsTheNextAttemptNumber() {
        BatchRun run = cms.startRun("equities", "eod_pnl");
        run.stage("validation", "validation").fail("Timeout");
        Stage second = run.stage("validation", "validation");
        second.finish();
        assertEquals(2, second.attempt());
        List<TestJson.P> started = TestJson.named(TestJson.points(cms.drainToJson()), "cms.stage.run.started");
        assertEquals("2", started.get(1).attr("cms.attempt"));
        assertEquals("1", started.get(1).attr("cms.retries"));
    }

    @Test
    void feedHeartbeatEmitsUpLatencyAndQualityCounts() {
        cms.feed("bloomberg-bpipe", "bloomberg").heartbeat(true, 12.5, 48211, 3, 1);
        cms.feed("refinitiv-elektron", "refinitiv").heartbeat(Heartbeat.down().stalenessSeconds(90).messages(0));
        List<TestJson.P> pts = TestJson.points(cms.drainToJson());
        assertEquals(2, TestJson.named(pts, "cms.feed.up").size());
        assertEquals("0", TestJson.named(pts, "cms.feed.up").get(1).value());
        assertEquals("12.5", TestJson.named(pts, "cms.feed.latency").get(0).value());
        assertEquals("3", TestJson.named(pts, "cms.feed.missing_fields").get(0).value());
        assertEquals("90.0", TestJson.named(pts, "cms.feed.staleness").get(0).value());
        assertEquals(2, TestJson.named(pts, "cms.feed.messages").size());
    }

    @Test
    void badInputNeverThrowsAndIsCountedAsInvalid() {
        cms.gauge("x", Double.NaN);
        cms.counter("y", -1);
        cms.gauge(null, 1);
        BatchRun run = cms.startRun(null, "job");
        run.stage("s", "validation").records(1).finish();
        run.fail((Throwable) null);
        cms.feed(null, null).heartbeat(true);
        assertEquals(5, cms.stats().invalid());
        assertEquals(0, TestJson.points(cms.drainToJson()).size());
    }

    @Test
    void customMetricsArePrefixedAndTyped() {
        cms.gauge("orders.open", 42, Map.of("desk", "rates"));
        cms.counter("trades", 7, Map.of("lot", 100, "ratio", 0.25, "partial", false));
        List<TestJson.P> pts = TestJson.points(cms.drainToJson());
        assertEquals("cms.app.orders.open", pts.get(0).metric);
        assertEquals("42.0", pts.get(0).value());
        assertEquals("7", pts.get(1).value());
        assertEquals("100", pts.get(1).attr("lot"));
        assertEquals(0.25, pts.get(1).attr("ratio"));
        assertEquals(false, pts.get(1).attr("partial"));
    }

    @Test
    void statsMeasureCallsAndTheirOverhead() {
        for (int i = 0; i < 10; i++) {
            cms.gauge("g", i);
        }
        Stats s = cms.stats();
        assertEquals(10, s.calls());
        assertEquals(10, s.queueSize());
        assertTrue(s.avgCallOverheadUs() > 0);
        assertTrue(s.maxCallOverheadUs() >= s.avgCallOverheadUs());
        assertEquals(10L, s.asMap().get("enqueued"));
    }
}
