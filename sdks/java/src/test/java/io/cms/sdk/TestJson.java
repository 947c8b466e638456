package io.cms.sdk;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Reads OTLP/JSON requests back in tests. */
final class TestJson {
    private TestJson() {
    }

    /** A flattened data point: metric name, kind and the point's fields with attributes as a map. */
    static final class P {
        final String metric;
        final String kind;
        final Map<String, Object> point;
        final Map<String, Object> attrs = new HashMap<>();

        P(String metric, String kind, Map<String, Object> point) {
            this.metric = metric;
            this.kind = kind;
            this.point = point;
        }

        Object attr(String k) {
            return attrs.get(k);
        }

        String value() {
            return String.valueOf(point.containsKey("asInt") ? point.get("asInt") : point.get("asDouble"));
        }
    }

    @SuppressWarnings("unchecked")
    static List<P> points(String requestJson) {
        List<P> out = new ArrayList<>();
        Map<String, Object> req = (Map<String, Object>) Json.parse(requestJson);
        for (Object rm : (List<Object>) req.get("resourceMetrics")) {
            for (Object sm : (List<Object>) ((Map<String, Object>) rm).get("scopeMetrics")) {
                for (Object mo : (List<Object>) ((Map<String, Object>) sm).get("metrics")) {
                    Map<String, Object> m = (Map<String, Object>) mo;
                    String kind = m.containsKey("sum") ? "sum" : "gauge";
                    Map<String, Object> body = (Map<String, Object>) m.get(kind);
                    for (Object dpo : (List<Object>) body.get("dataPoints")) {
                        Map<String, Object> dp = (Map<String, Object>) dpo;
                        P p = new P((String) m.get("name"), kind, dp);
                        for (Object ao : (List<Object>) dp.get("attributes")) {
                            Map<String, Object> a = (Map<String, Object>) ao;
                            Map<String, Object> v = (Map<String, Object>) a.get("value");
                            p.attrs.put((String) a.get("key"), v.values().iterator().next());
                        }
                        out.add(p);
                    }
                }
            }
        }
        return out;
    }

    static List<P> named(List<P> points, String metric) {
        List<P> out = new ArrayList<>();
        for (P p : points) {
            if (p.metric.equals(metric)) {
                out.add(p);
            }
        }
        return out;
    }
}
