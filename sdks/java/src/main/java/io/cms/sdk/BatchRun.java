package io.cms.sdk;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One batch run of a job for an asset class. Ends once: {@link #finish()}, {@link #fail(String)}, or
 * {@link #close()} (success unless it already ended), so try-with-resources records success by default
 * and an explicit {@code fail(...)} before leaving the block records the failure.
 */
public final class BatchRun implements AutoCloseable {
    /** The body of a stage run by {@link #stage(String, String, List, StageBody)}. */
    @FunctionalInterface
    public interface StageBody<E extends Exception> {
        void accept(Stage stage) throws E;
    }

    private final CmsClient client;
    private final String runId;
    private final List<Point.Attr> base;
    final List<Point.Attr> stageBase;
    private final long start;
    private final boolean inert;
    private Long records;
    private Long bytes;
    private boolean ended;
    private final Map<String, Integer> attempts = new HashMap<>();

    BatchRun(CmsClient client, String assetClass, String job, String runId, String scheduledStart, long start) {
        this.client = client;
        this.start = start;
        this.inert = false;
        this.runId = runId != null && !runId.isEmpty() ? runId : assetClass + "." + job + "." + Times.formatMillis(start);
        this.stageBase = List.of(new Point.Attr("cms.asset_class", assetClass), new Point.Attr("cms.job", job),
                new Point.Attr("cms.run_id", this.runId));
        List<Point.Attr> b = new ArrayList<>(stageBase);
        if (scheduledStart != null) {
            b.add(new Point.Attr("cms.scheduled_start", scheduledStart));
        }
        this.base = List.copyOf(b);
        client.emit(Point.ofLong("cms.batch.run.started", "{run}", true, base, start, start, 1));
    }

    private BatchRun(CmsClient client) {
        this.client = client;
        this.inert = true;
        this.runId = "";
        this.base = List.of();
        this.stageBase = List.of();
        this.start = 0;
        this.ended = true;
    }

    static BatchRun inert(CmsClient client) {
        return new BatchRun(client);
    }

    public String runId() {
        return runId;
    }

    public synchronized boolean ended() {
        return ended;
    }

    /** Sets the records processed by the run (sent when it ends). */
    public synchronized BatchRun records(long n) {
        records = n;
        return this;
    }

    public synchronized BatchRun addRecords(long n) {
        records = (records == null ? 0 : records) + n;
        return this;
    }

    /** Sets the bytes processed by the run (sent when it ends). */
    public synchronized BatchRun bytes(long n) {
        bytes = n;
        return this;
    }

    public synchronized BatchRun addBytes(long n) {
        bytes = (bytes == null ? 0 : bytes) + n;
        return this;
    }

    /** Starts the next attempt of a sub-stage (attempt = 1 + the highest attempt of it so far in this run). */
    public Stage stage(String name, String type) {
        return stage(name, type, null, 0);
    }

    /** As {@link #stage(String, String)}, declaring the stage ids it waits for ({@code cms.stage_depends_on}). */
    public Stage stage(String name, String type, List<String> dependsOn) {
        return stage(name, type, dependsOn, 0);
    }

    /** As above with an explicit attempt number (0 = next). */
    public Stage stage(String name, String type, List<String> dependsOn, int attempt) {
        return client.guard(() -> {
            if (inert || name == null || name.isEmpty()) {
                if (!inert) {
                    client.exporter.invalid("stage needs a name");
                }
                return Stage.inert(client);
            }
            int a;
            synchronized (this) {
                int prev = attempts.getOrDefault(name, 0);
                a = attempt > 0 ? attempt : prev + 1;
                attempts.put(name, Math.max(prev, a));
            }
            return new Stage(client, this, name, type, dependsOn, a, client.now());
        }, () -> Stage.inert(client));
    }

    /** Runs {@code body} as a stage attempt: success when it returns, failed (and rethrown) when it throws. */
    public <E extends Exception> void stage(String name, String type, List<String> dependsOn, StageBody<E> body) throws E {
        try (Stage s = stage(name, type, dependsOn)) {
            try {
                body.accept(s);
            } catch (Exception | Error e) {
                s.fail(e);
                throw e;
            }
        }
    }

    /** Ends the run successfully now. */
    public void finish() {
        end(null);
    }

    /** Ends the run now as failed with {@code errorType} (e.g. Timeout, DataQualityError). */
    public void fail(String errorType) {
        end(errorType == null || errorType.isEmpty() ? "Error" : errorType);
    }

    /** Ends the run now as failed with the exception's simple class name as error type. */
    public void fail(Throwable error) {
        end(CmsClient.errorType(error));
    }

    /** Ends the run successfully unless it has already ended. */
    @Override
    public void close() {
        end(null);
    }

    private void end(String errorType) {
        client.guard(() -> {
            long t = client.now();
            Long rec;
            Long by;
            synchronized (this) {
                if (ended) {
                    return null;
                }
                ended = true;
                rec = records;
                by = bytes;
            }
            String status = errorType == null ? "success" : "failed";
            List<Point.Attr> withStatus = new ArrayList<>(base);
            withStatus.add(new Point.Attr("cms.status", status));
            List<Point.Attr> finished = new ArrayList<>(withStatus);
            finished.add(new Point.Attr("cms.error_type", errorType == null ? "" : errorType));
            client.emit(Point.ofLong("cms.batch.run.finished", "{run}", true, finished, start, t, 1));
            client.emit(Point.ofDouble("cms.batch.run.duration", "s", false, withStatus, start, t, (t - start) / 1e9));
            if (rec != null) {
                client.emit(Point.ofLong("cms.batch.run.records", "{record}", true, withStatus, start, t, rec));
            }
            if (by != null) {
                client.emit(Point.ofLong("cms.batch.run.bytes", "By", true, withStatus, start, t, by));
            }
            return null;
        }, () -> null);
    }
}
