package io.cms.sdk;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Function;
import java.util.zip.GZIPInputStream;

/** A local OTLP/HTTP receiver stand-in: scripted responses, recorded requests. */
final class StandIn implements AutoCloseable {
    static final class Reply {
        final int status;
        final String retryAfter;
        final String body;

        Reply(int status, String retryAfter, String body) {
            this.status = status;
            this.retryAfter = retryAfter;
            this.body = body;
        }
    }

    static final class Request {
        final String path;
        final Map<String, List<String>> headers;
        final String body;

        Request(String path, Map<String, List<String>> headers, String body) {
            this.path = path;
            this.headers = headers;
            this.body = body;
        }

        String header(String name) {
            for (Map.Entry<String, List<String>> e : headers.entrySet()) {
                if (e.getKey().equalsIgnoreCase(name)) {
                    return e.getValue().get(0);
                }
            }
            return null;
        }
    }

    final ConcurrentLinkedQueue<Reply> script = new ConcurrentLinkedQueue<>();
    final List<Request> requests = Collections.synchronizedList(new ArrayList<>());
    volatile Function<Request, Reply> rule = r -> new Reply(200, null, "{}");
    private final HttpServer server;

    StandIn(int port) throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
        server.createContext("/", this::handle);
        server.start();
    }

    StandIn() throws IOException {
        this(0);
    }

    int port() {
        return server.getAddress().getPort();
    }

    String endpoint() {
        return "http://127.0.0.1:" + port();
    }

    StandIn then(int status, String retryAfter, String body) {
        script.add(new Reply(status, retryAfter, body));
        return this;
    }

    private void handle(HttpExchange ex) throws IOException {
        byte[] raw;
        try (InputStream in = ex.getRequestBody()) {
            raw = in.readAllBytes();
        }
        if ("gzip".equalsIgnoreCase(ex.getRequestHeaders().getFirst("Content-Encoding"))) {
            try (GZIPInputStream gz = new GZIPInputStream(new java.io.ByteArrayInputStream(raw))) {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                gz.transferTo(out);
                raw = out.toByteArray();
            }
        }
        Request req = new Request(ex.getRequestURI().getPath(), ex.getRequestHeaders(), new String(raw, StandardCharsets.UTF_8));
        requests.add(req);
        Reply r = script.poll();
        if (r == null) {
            r = rule.apply(req);
        }
        if (r.retryAfter != null) {
            ex.getResponseHeaders().add("Retry-After", r.retryAfter);
        }
        byte[] body = r.body == null ? new byte[0] : r.body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().add("Content-Type", "application/json");
        ex.sendResponseHeaders(r.status, body.length == 0 ? -1 : body.length);
        if (body.length > 0) {
            ex.getResponseBody().write(body);
        }
        ex.close();
    }

    /** Data points in all requests received. */
    int points() {
        int n = 0;
        synchronized (requests) {
            for (Request r : requests) {
                n += TestJson.points(r.body).size();
            }
        }
        return n;
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
