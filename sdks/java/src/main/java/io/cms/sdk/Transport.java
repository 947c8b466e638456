package io.cms.sdk;

import java.io.IOException;

/** Sends one OTLP/HTTP request body. The default is {@link HttpTransport}; tests may plug in their own. */
public interface Transport {
    /** The parts of an HTTP response the exporter looks at. */
    final class Response {
        public final int status;
        /** The Retry-After header, or null. */
        public final String retryAfter;
        public final String body;

        public Response(int status, String retryAfter, String body) {
            this.status = status;
            this.retryAfter = retryAfter;
            this.body = body == null ? "" : body;
        }
    }

    /** Posts {@code json} (UTF-8 bytes of an ExportMetricsServiceRequest); an IOException means no response. */
    Response send(byte[] json) throws IOException, InterruptedException;
}
