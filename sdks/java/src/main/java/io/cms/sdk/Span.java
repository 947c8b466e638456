package io.cms.sdk;

import java.util.ArrayList;
import java.util.List;

/**
 * What a batch run and a stage attempt share: record counts and one end, success or failure. {@code metric}
 * names the point family ({@code cms.batch.run} or {@code cms.stage.run}); {@code base} holds the attributes
 * every point of the span carries.
 */
abstract class Span<S extends Span<S>> implements AutoCloseable {
    final CmsClient client;
    final List<Point.Attr> base;
    final long start;
    private final String metric;
    private Long records;
    Long bytes;
    private boolean ended;

    Span(CmsClient client, String metric, List<Point.Attr> base, long start, boolean ended) {
        this.client = client;
        this.metric = metric;
        this.base = base;
        this.start = start;
        this.ended = ended;
    }

    abstract S self();

    public synchronized boolean ended() {
        return ended;
    }

    /** Sets the records processed (sent when it ends). */
    public synchronized S records(long n) {
        records = n;
        return self();
    }

    public synchronized S addRecords(long n) {
        records = (records == null ? 0 : records) + n;
        return self();
    }

    /** Ends successfully now. */
    public void finish() {
        end(null);
    }

    /** Ends now as failed with {@code errorType} (e.g. Timeout, DataQualityError). */
    public void fail(String errorType) {
        end(errorType == null || errorType.isEmpty() ? "Error" : errorType);
    }

    /** Ends now as failed with the exception's simple class name as error type. */
    public void fail(Throwable error) {
        end(CmsClient.errorType(error));
    }

    /** Ends successfully unless it has already ended. */
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
            client.emit(Point.ofLong(metric + ".finished", "{run}", true, finished, start, t, 1));
            client.emit(Point.ofDouble(metric + ".duration", "s", false, withStatus, start, t, (t - start) / 1e9));
            if (rec != null) {
                client.emit(Point.ofLong(metric + ".records", "{record}", true, withStatus, start, t, rec));
            }
            if (by != null) {
                client.emit(Point.ofLong(metric + ".bytes", "By", true, withStatus, start, t, by));
            }
            return null;
        }, () -> null);
    }
}
