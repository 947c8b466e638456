package io.cms.sdk;

import java.time.Instant;

/** The figures of one feed heartbeat; only those set are sent ({@code up} always is). */
public final class Heartbeat {
    final boolean up;
    Double latencyMs;
    Double stalenessSeconds;
    Long messages;
    Long missingFields;
    Long invalidValues;
    double intervalSeconds = 60;
    Instant time;

    private Heartbeat(boolean up) {
        this.up = up;
    }

    /** A heartbeat of a feed that is connected and delivering. */
    public static Heartbeat up() {
        return new Heartbeat(true);
    }

    /** A heartbeat of a feed that is down. */
    public static Heartbeat down() {
        return new Heartbeat(false);
    }

    public static Heartbeat of(boolean up) {
        return new Heartbeat(up);
    }

    /** Provider-to-CMS latency, mean over the interval. */
    public Heartbeat latencyMs(double ms) { this.latencyMs = ms; return this; }
    /** Seconds since the last update received. */
    public Heartbeat stalenessSeconds(double s) { this.stalenessSeconds = s; return this; }
    /** Messages received in the interval. */
    public Heartbeat messages(long n) { this.messages = n; return this; }
    /** Required fields missing in the interval. */
    public Heartbeat missingFields(long n) { this.missingFields = n; return this; }
    /** Values failing validation in the interval. */
    public Heartbeat invalidValues(long n) { this.invalidValues = n; return this; }
    /** Length of the interval the counts cover (default 60 s). */
    public Heartbeat intervalSeconds(double s) { this.intervalSeconds = s; return this; }
    /** When the heartbeat was taken (default: now). */
    public Heartbeat at(Instant t) { this.time = t; return this; }
}
