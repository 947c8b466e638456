package io.cms.sdk;

import java.time.Instant;

/** Where the SDK reads the current time, in nanoseconds since the Unix epoch. Inject one to make points deterministic. */
@FunctionalInterface
public interface Clock {
    /** Nanoseconds since 1970-01-01T00:00:00Z. */
    long nowNanos();

    /** The system wall clock. */
    static Clock system() {
        return () -> {
            Instant now = Instant.now();
            return now.getEpochSecond() * 1_000_000_000L + now.getNano();
        };
    }
}
