package io.cms.sdk;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Requests that could not be delivered, one file per request body:
 * {@code <19-digit time ns>-<pid>-<6-digit seq>-<points>.json}, written to a temporary name and renamed.
 */
final class Spool {
    private final Path dir;
    private final long maxBytes;
    private final AtomicLong seq = new AtomicLong();
    private final long pid = ProcessHandle.current().pid();

    Spool(Path dir, long maxBytes) {
        this.dir = dir;
        this.maxBytes = maxBytes;
    }

    Path dir() {
        return dir;
    }

    /** Writes a body; returns false when the spool is full or the disk refuses. */
    boolean write(String body, int points, long nowNanos) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        Files.createDirectories(dir);
        if (sizeBytes() + bytes.length > maxBytes) {
            return false;
        }
        String name = String.format("%019d-%d-%06d-%d.json", nowNanos, pid, seq.incrementAndGet() % 1_000_000, points);
        Path tmp = dir.resolve("." + name + ".tmp");
        Files.write(tmp, bytes);
        try {
            Files.move(tmp, dir.resolve(name), StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, dir.resolve(name), StandardCopyOption.REPLACE_EXISTING);
        }
        return true;
    }

    /** Spooled request files, oldest first. */
    List<Path> pending() {
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.json")) {
            for (Path p : ds) {
                if (!p.getFileName().toString().startsWith(".")) {
                    out.add(p);
                }
            }
        } catch (IOException e) {
            return out;
        }
        Collections.sort(out);
        return out;
    }

    long sizeBytes() {
        long total = 0;
        for (Path p : pending()) {
            try {
                total += Files.size(p);
            } catch (IOException ignored) {
                // removed meanwhile
            }
        }
        return total;
    }

    static int pointsOf(Path file) {
        String n = file.getFileName().toString();
        int dash = n.lastIndexOf('-');
        int dot = n.lastIndexOf(".json");
        try {
            return Integer.parseInt(n.substring(dash + 1, dot));
        } catch (RuntimeException e) {
            return 0;
        }
    }

    static String read(Path file) throws IOException {
        return new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
    }

    static void delete(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException ignored) {
            // another process may have replayed it
        }
    }

    static void reject(Path file) {
        try {
            Files.move(file, file.resolveSibling(file.getFileName() + ".rejected"), StandardCopyOption.REPLACE_EXISTING);
        } catch (NoSuchFileException ignored) {
            // replayed by another process
        } catch (IOException e) {
            delete(file);
        }
    }
}
