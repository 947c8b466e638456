package io.cms.sdk;

import java.time.Instant;

/** A clock that only moves when told to: for tests and replaying recorded events. Thread-safe. */
public final class ManualClock implements Clock {
    private volatile long nanos;

    public ManualClock(Instant start) {
        set(start);
    }

    public ManualClock(long epochNanos) {
        this.nanos = epochNanos;
    }

    @Override
    public long nowNanos() {
        return nanos;
    }

    public void set(Instant t) {
        nanos = Times.toNanos(t);
    }

    public void setNanos(long epochNanos) {
        nanos = epochNanos;
    }

    public void advanceMillis(long ms) {
        nanos += ms * 1_000_000L;
    }
}
