package io.cms.sdk;

import java.util.ArrayList;
import java.util.List;

/** A market-data feed: send a heartbeat every minute with its connectivity and quality figures. */
public final class Feed {
    private final CmsClient client;
    private final List<Point.Attr> attrs;
    private final boolean valid;

    Feed(CmsClient client, String feedId, String provider) {
        this.client = client;
        this.valid = feedId != null && !feedId.isEmpty();
        List<Point.Attr> a = new ArrayList<>();
        a.add(new Point.Attr("cms.feed", valid ? feedId : ""));
        if (provider != null) {
            a.add(new Point.Attr("cms.provider", provider));
        }
        this.attrs = List.copyOf(a);
    }

    /** Up/down only. */
    public void heartbeat(boolean up) {
        heartbeat(Heartbeat.of(up));
    }

    /** Up/down, mean latency and the minute's message, missing-field and invalid-value counts. */
    public void heartbeat(boolean up, double latencyMs, long messages, long missingFields, long invalidValues) {
        heartbeat(Heartbeat.of(up).latencyMs(latencyMs).messages(messages).missingFields(missingFields)
                .invalidValues(invalidValues));
    }

    public void heartbeat(Heartbeat hb) {
        client.guard(() -> {
            if (!valid || hb == null) {
                client.exporter.invalid("heartbeat needs a feed id");
                return null;
            }
            if (notFinite(hb.latencyMs) || notFinite(hb.stalenessSeconds) || negative(hb.messages)
                    || negative(hb.missingFields) || negative(hb.invalidValues) || !(hb.intervalSeconds >= 0)) {
                client.exporter.invalid("heartbeat figures must be finite and counts non-negative");
                return null;
            }
            long t = hb.time == null ? client.now() : Times.toNanos(hb.time);
            long s = t - Math.round(hb.intervalSeconds * 1e9);
            client.emit(Point.ofLong("cms.feed.up", "1", false, attrs, 0, t, hb.up ? 1 : 0));
            if (hb.latencyMs != null) {
                client.emit(Point.ofDouble("cms.feed.latency", "ms", false, attrs, 0, t, hb.latencyMs));
            }
            if (hb.stalenessSeconds != null) {
                client.emit(Point.ofDouble("cms.feed.staleness", "s", false, attrs, 0, t, hb.stalenessSeconds));
            }
            if (hb.messages != null) {
                client.emit(Point.ofLong("cms.feed.messages", "{message}", true, attrs, s, t, hb.messages));
            }
            if (hb.missingFields != null) {
                client.emit(Point.ofLong("cms.feed.missing_fields", "{field}", true, attrs, s, t, hb.missingFields));
            }
            if (hb.invalidValues != null) {
                client.emit(Point.ofLong("cms.feed.invalid_values", "{value}", true, attrs, s, t, hb.invalidValues));
            }
            return null;
        }, () -> null);
    }

    private static boolean notFinite(Double d) {
        return d != null && !Double.isFinite(d);
    }

    private static boolean negative(Long n) {
        return n != null && n < 0;
    }
}
