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
public final class BatchRun extends Span<BatchRun> {
    /** The body of a stage run by {@link #stage(String, String, List, StageBody)}. */
    @FunctionalInterface
    public interface StageBody<E extends Exception> {
        void accept(Stage stage) throws E;
    }

    private final String runId;
    final List<Point.Attr> stageBase;
    private final boolean inert;
    private final Map<String, Integer> attempts = new HashMap<>();

    BatchRun(CmsClient client, String assetClass, String job, String runId, String scheduledStart, long start) {
        super(client, "cms.batch.run", attributes(assetClass, job, id(assetClass, job, runId, start), scheduledStart),
                start, false);
        this.inert = false;
        this.runId = id(assetClass, job, runId, start);
        this.stageBase = base.subList(0, 3);
        client.emit(Point.ofLong("cms.batch.run.started", "{run}", true, base, start, start, 1));
    }

    private BatchRun(CmsClient client) {
        super(client, "cms.batch.run", List.of(), 0, true);
        this.inert = true;
        this.runId = "";
        this.stageBase = List.of();
    }

    private static String id(String assetClass, String job, String runId, long start) {
        return runId != null && !runId.isEmpty() ? runId : assetClass + "." + job + "." + Times.formatMillis(start);
    }

    private static List<Point.Attr> attributes(String assetClass, String job, String runId, String scheduledStart) {
        List<Point.Attr> b = new ArrayList<>(List.of(new Point.Attr("cms.asset_class", assetClass),
                new Point.Attr("cms.job", job), new Point.Attr("cms.run_id", runId)));
        if (scheduledStart != null) {
            b.add(new Point.Attr("cms.scheduled_start", scheduledStart));
        }
        return List.copyOf(b);
    }

    @Override
    BatchRun self() {
        return this;
    }

    static BatchRun inert(CmsClient client) {
        return new BatchRun(client);
    }

    public String runId() {
        return runId;
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
}
