package io.cms.sdk;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.logging.Logger;
import java.util.zip.GZIPOutputStream;

/** OTLP/HTTP JSON over {@link java.net.http.HttpClient} (HTTP/1.1). */
public final class HttpTransport implements Transport {
    private static final Logger LOG = Logger.getLogger("io.cms.sdk");
    private static final Set<String> RESTRICTED = Set.of("connection", "content-length", "expect", "host", "upgrade");

    private final HttpClient http;
    private final URI uri;
    private final Map<String, String> headers;
    private final Duration timeout;
    private final boolean gzip;

    public HttpTransport(String url, Map<String, String> headers, long timeoutMs, boolean gzip) {
        this.uri = URI.create(url);
        if (!"http".equals(uri.getScheme()) && !"https".equals(uri.getScheme())) {
            throw new IllegalArgumentException("endpoint '" + url + "' must start with http:// or https:// "
                    + "(set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318)");
        }
        this.headers = headers;
        this.timeout = Duration.ofMillis(Math.max(1, timeoutMs));
        this.gzip = gzip;
        this.http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(this.timeout)
                .build();
    }

    @Override
    public Response send(byte[] json) throws IOException, InterruptedException {
        byte[] body = json;
        HttpRequest.Builder rb = HttpRequest.newBuilder(uri)
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .header("User-Agent", "cms-sdk-java/" + CmsClient.VERSION);
        if (gzip) {
            ByteArrayOutputStream bos = new ByteArrayOutputStream(json.length / 4 + 64);
            try (GZIPOutputStream gz = new GZIPOutputStream(bos)) {
                gz.write(json);
            }
            body = bos.toByteArray();
            rb.header("Content-Encoding", "gzip");
        }
        for (Map.Entry<String, String> h : headers.entrySet()) {
            if (RESTRICTED.contains(h.getKey().toLowerCase(Locale.ROOT))) {
                LOG.warning("cms-sdk: header '" + h.getKey() + "' cannot be set by the Java HTTP client; ignored");
                continue;
            }
            rb.header(h.getKey(), h.getValue());
        }
        HttpResponse<byte[]> r = http.send(rb.POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(),
                HttpResponse.BodyHandlers.ofByteArray());
        String retryAfter = r.headers().firstValue("Retry-After").orElse(null);
        return new Response(r.statusCode(), retryAfter, new String(r.body(), StandardCharsets.UTF_8));
    }
}
