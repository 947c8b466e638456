package io.cms.sdk;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Time conversions shared by the SDK and its conformance runner. */
public final class Times {
    private static final Pattern RFC3339 =
            Pattern.compile("^(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2})(?:\\.(\\d{1,9}))?Z$");
    private static final DateTimeFormatter SECONDS =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss").withZone(ZoneOffset.UTC);

    private Times() {
    }

    public static long toNanos(Instant t) {
        return Math.addExact(Math.multiplyExact(t.getEpochSecond(), 1_000_000_000L), t.getNano());
    }

    /** RFC 3339 UTC text ending in Z, with 0-9 fraction digits, to epoch nanoseconds (exact). */
    public static long parseNanos(String text) {
        Matcher m = RFC3339.matcher(text);
        if (!m.matches()) {
            throw new IllegalArgumentException(
                    "time '" + text + "' is not RFC 3339 UTC like 2026-11-20T22:01:00.250Z");
        }
        long secs = Instant.parse(m.group(1) + "Z").getEpochSecond();
        String frac = m.group(2) == null ? "" : m.group(2);
        StringBuilder padded = new StringBuilder(frac);
        while (padded.length() < 9) {
            padded.append('0');
        }
        return secs * 1_000_000_000L + Long.parseLong(padded.toString());
    }

    /** Epoch nanoseconds to {@code YYYY-MM-DDTHH:MM:SS.mmmZ} (milliseconds, truncated). */
    public static String formatMillis(long nanos) {
        long secs = Math.floorDiv(nanos, 1_000_000_000L);
        long rem = Math.floorMod(nanos, 1_000_000_000L);
        return SECONDS.format(Instant.ofEpochSecond(secs)) + String.format(".%03dZ", rem / 1_000_000L);
    }
}
