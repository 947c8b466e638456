package io.cms.sdk;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** One data point waiting to be exported. Immutable. */
final class Point {
    /** An attribute; its value is a String, Long, Double or Boolean. */
    static final class Attr {
        final String key;
        final Object value;

        Attr(String key, Object value) {
            this.key = key;
            this.value = value;
        }
    }

    final String name;
    final String unit;
    final boolean sum;
    final List<Attr> attrs;
    /** Epoch nanoseconds, or 0 for none. */
    final long startNanos;
    final long timeNanos;
    final boolean isDouble;
    final long longValue;
    final double doubleValue;

    private Point(String name, String unit, boolean sum, List<Attr> attrs, long startNanos, long timeNanos,
                  boolean isDouble, long longValue, double doubleValue) {
        this.name = name;
        this.unit = unit;
        this.sum = sum;
        this.attrs = Collections.unmodifiableList(attrs);
        this.startNanos = startNanos;
        this.timeNanos = timeNanos;
        this.isDouble = isDouble;
        this.longValue = longValue;
        this.doubleValue = doubleValue;
    }

    static Point ofLong(String name, String unit, boolean sum, List<Attr> attrs, long start, long time, long v) {
        return new Point(name, unit, sum, attrs, start, time, false, v, 0);
    }

    static Point ofDouble(String name, String unit, boolean sum, List<Attr> attrs, long start, long time, double v) {
        return new Point(name, unit, sum, attrs, start, time, true, 0, v);
    }

    /** A value that is integral becomes an int point, anything else a double point. */
    static Point ofNumber(String name, String unit, boolean sum, List<Attr> attrs, long start, long time, double v) {
        if (isIntegral(v)) {
            return ofLong(name, unit, sum, attrs, start, time, (long) v);
        }
        return ofDouble(name, unit, sum, attrs, start, time, v);
    }

    static boolean isIntegral(double v) {
        return !Double.isInfinite(v) && v == Math.rint(v) && Math.abs(v) < 9.2e18;
    }

    /** Converts user attributes to typed ones by the shared value rules (integral numbers are ints). */
    static List<Attr> attrsOf(Map<String, ?> map) {
        List<Attr> out = new ArrayList<>();
        if (map == null) {
            return out;
        }
        for (Map.Entry<String, ?> e : map.entrySet()) {
            if (e.getKey() == null || e.getValue() == null) {
                continue;
            }
            out.add(new Attr(e.getKey(), typed(e.getValue())));
        }
        return out;
    }

    static Object typed(Object v) {
        if (v instanceof Boolean || v instanceof String) {
            return v;
        }
        if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
            return ((Number) v).longValue();
        }
        if (v instanceof Number) {
            double d = ((Number) v).doubleValue();
            return isIntegral(d) ? (Object) (long) d : (Object) d;
        }
        return String.valueOf(v);
    }
}
