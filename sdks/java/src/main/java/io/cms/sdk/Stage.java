package io.cms.sdk;

import java.util.ArrayList;
import java.util.List;

/** One attempt of a critical sub-stage inside a batch run. Ends once, like {@link BatchRun}. */
public final class Stage extends Span<Stage> {
    private final int attempt;

    Stage(CmsClient client, BatchRun run, String name, String type, List<String> dependsOn, int attempt, long start) {
        super(client, "cms.stage.run", attributes(run, name, type, dependsOn, attempt), start, false);
        this.attempt = attempt;
        client.emit(Point.ofLong("cms.stage.run.started", "{run}", true, base, start, start, 1));
    }

    private Stage(CmsClient client) {
        super(client, "cms.stage.run", List.of(), 0, true);
        this.attempt = 0;
    }

    private static List<Point.Attr> attributes(BatchRun run, String name, String type, List<String> dependsOn, int attempt) {
        List<Point.Attr> b = new ArrayList<>(run.stageBase);
        b.add(new Point.Attr("cms.stage", name));
        if (type != null) {
            b.add(new Point.Attr("cms.stage_type", type));
        }
        b.add(new Point.Attr("cms.attempt", (long) attempt));
        b.add(new Point.Attr("cms.retries", (long) attempt - 1));
        if (dependsOn != null) {
            b.add(new Point.Attr("cms.stage_depends_on", String.join(",", dependsOn)));
        }
        return List.copyOf(b);
    }

    @Override
    Stage self() {
        return this;
    }

    static Stage inert(CmsClient client) {
        return new Stage(client);
    }

    /** 1 for the first attempt of this stage in its run, 2 for its first retry, ... */
    public int attempt() {
        return attempt;
    }
}
