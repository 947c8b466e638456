package io.cms.sdk;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Writes an ExportMetricsServiceRequest in OTLP/JSON encoding. */
final class OtlpJson {
    private OtlpJson() {
    }

    /** One resourceMetrics, one scopeMetrics, one metric entry per name (first emitted first), points in order. */
    static String request(List<Point.Attr> resource, List<Point> points) {
        Map<String, List<Point>> byName = new LinkedHashMap<>();
        for (Point p : points) {
            byName.computeIfAbsent(p.name, k -> new ArrayList<>()).add(p);
        }
        StringBuilder sb = new StringBuilder(256 + points.size() * 320);
        sb.append("{\"resourceMetrics\":[{\"resource\":{\"attributes\":");
        attributes(sb, resource);
        sb.append("},\"scopeMetrics\":[{\"scope\":{\"name\":\"cms-sdk\"},\"metrics\":[");
        boolean firstMetric = true;
        for (List<Point> group : byName.values()) {
            Point head = group.get(0);
            if (!firstMetric) {
                sb.append(',');
            }
            firstMetric = false;
            sb.append("{\"name\":");
            Json.quote(sb, head.name);
            sb.append(",\"unit\":");
            Json.quote(sb, head.unit);
            sb.append(head.sum ? ",\"sum\":{\"dataPoints\":[" : ",\"gauge\":{\"dataPoints\":[");
            for (int k = 0; k < group.size(); k++) {
                if (k > 0) {
                    sb.append(',');
                }
                dataPoint(sb, group.get(k));
            }
            sb.append(']');
            if (head.sum) {
                sb.append(",\"aggregationTemporality\":1,\"isMonotonic\":true");
            }
            sb.append("}}");
        }
        sb.append("]}]}]}");
        return sb.toString();
    }

    private static void dataPoint(StringBuilder sb, Point p) {
        sb.append("{\"attributes\":");
        attributes(sb, p.attrs);
        if (p.startNanos != 0) {
            sb.append(",\"startTimeUnixNano\":\"").append(Long.toUnsignedString(p.startNanos)).append('"');
        }
        sb.append(",\"timeUnixNano\":\"").append(Long.toUnsignedString(p.timeNanos)).append('"');
        if (p.isDouble) {
            sb.append(",\"asDouble\":").append(number(p.doubleValue));
        } else {
            sb.append(",\"asInt\":\"").append(p.longValue).append('"');
        }
        sb.append('}');
    }

    static void attributes(StringBuilder sb, List<Point.Attr> attrs) {
        sb.append('[');
        for (int k = 0; k < attrs.size(); k++) {
            Point.Attr a = attrs.get(k);
            if (k > 0) {
                sb.append(',');
            }
            sb.append("{\"key\":");
            Json.quote(sb, a.key);
            sb.append(",\"value\":{");
            if (a.value instanceof String) {
                sb.append("\"stringValue\":");
                Json.quote(sb, (String) a.value);
            } else if (a.value instanceof Boolean) {
                sb.append("\"boolValue\":").append(a.value);
            } else if (a.value instanceof Long) {
                sb.append("\"intValue\":\"").append(a.value).append('"');
            } else {
                sb.append("\"doubleValue\":").append(number((Double) a.value));
            }
            sb.append("}}");
        }
        sb.append(']');
    }

    /** A finite double as a JSON number. */
    static String number(double d) {
        if (Double.isNaN(d) || Double.isInfinite(d)) {
            return "0";
        }
        return Double.toString(d);
    }
}
