package io.cms.sdk;

import java.util.ArrayList;
import java.util.List;

/** One attempt of a critical sub-stage inside a batch run. Ends once, like {@link BatchRun}. */
public final class Stage implements AutoCloseable {
    private final CmsClient client;
    private final List<Point.Attr> base;
    private final long start;
    private final int attempt;
    private Long records;
    private boolean ended;

    Stage(CmsClient client, BatchRun run, String name, String type, List<String> dependsOn, int attempt, long start) {
        this.client = client;
        this.start = start;
        this.attempt = attempt;
        List<Point.Attr> b = new ArrayList<>(run.stageBase);
        b.add(new Point.Attr("cms.stage", name));
        if (type != null) {
            b.add(new Point.Attr("cms.stage_type", type));
        }
        b.add(new Point.Attr("cms.attempt", (long) attempt));
        b.add(new Point.Attr("cms.retries", (long) attempt - 1));
        if (dependsOn != null) {
            b.add(new Point.Attr("cms.stage_depends_on", String.join(",", dependsOn)));
        }
        this.base = List.copyOf(b);
        client.emit(Point.ofLong("cms.stage.run.started", "{run}", true, base, start, start, 1));
    }

    private Stage(CmsClient client) {
        this.client = client;
        this.base = List.of();
        this.start = 0;
        this.attempt = 0;
        this.ended = true;
    }

    static Stage inert(CmsClient client) {
        return new Stage(client);
    }

    /** 1 for the first attempt of this stage in its run, 2 for its first retry, ... */
    public int attempt() {
        return attempt;
    }

    public synchronized boolean ended() {
        return ended;
    }

    /** Sets the records processed by this attempt (sent when it ends). */
    public synchronized Stage records(long n) {
        records = n;
        return this;
    }

    public synchronized Stage addRecords(long n) {
        records = (records == null ? 0 : records) + n;
        return this;
    }

    public void finish() {
        end(null);
    }

    public void fail(String errorType) {
        end(errorType == null || errorType.isEmpty() ? "Error" : errorType);
    }

    public void fail(Throwable error) {
        end(CmsClient.errorType(error));
    }

    /** Ends the attempt successfully unless it has already ended. */
    @Override
    public void close() {
        end(null);
    }

    private void end(String errorType) {
        client.guard(() -> {
            long t = client.now();
            Long rec;
            synchronized (this) {
                if (ended) {
                    return null;
                }
                ended = true;
                rec = records;
            }
            String status = errorType == null ? "success" : "failed";
            List<Point.Attr> withStatus = new ArrayList<>(base);
            withStatus.add(new Point.Attr("cms.status", status));
            List<Point.Attr> finished = new ArrayList<>(withStatus);
            finished.add(new Point.Attr("cms.error_type", errorType == null ? "" : errorType));
            client.emit(Point.ofLong("cms.stage.run.finished", "{run}", true, finished, start, t, 1));
            client.emit(Point.ofDouble("cms.stage.run.duration", "s", false, withStatus, start, t, (t - start) / 1e9));
            if (rec != null) {
                client.emit(Point.ofLong("cms.stage.run.records", "{record}", true, withStatus, start, t, rec));
            }
            return null;
        }, () -> null);
    }
}
