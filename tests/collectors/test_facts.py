"""Facts CloudWatch does not publish: RDS connection limits, Lambda memory and timeouts from log lines."""

from __future__ import annotations

from cms_dagster.collectors import facts

GIB = 1024**3


def test_instance_class_memory_and_rds_formulas():
    assert facts.instance_class_memory("db.r6g.xlarge") == 32 * GIB
    assert facts.instance_class_memory("db.m5.large") == 8 * GIB
    assert facts.instance_class_memory("db.t3.micro") == 1 * GIB
    assert facts.instance_class_memory("db.serverless") is None
    assert facts.evaluate_rds_formula("400", None) == 400
    assert facts.evaluate_rds_formula("LEAST({DBInstanceClassMemory/9531392},5000)", 32 * GIB) == 3604
    assert facts.evaluate_rds_formula("{DBInstanceClassMemory/12582880}", 8 * GIB) == 682
    assert facts.evaluate_rds_formula("{DBInstanceClassMemory/9531392}", None) is None
    assert facts.evaluate_rds_formula("__import__('os').system('x')", 8 * GIB) is None  # only arithmetic


def test_report_lines_give_memory_and_timeouts_per_minute_counted_once():
    rid = "8f5e1d2a-0000-4000-8000-00000000000{}"
    t = 1_795_183_200_000  # 14:00:00
    events = [
        {"timestamp": t + 5_000, "message": f"REPORT RequestId: {rid.format(1)}\tDuration: 10.0 ms\tMax Memory Used: 80 MB"},
        {"timestamp": t + 65_000, "message": f"2026-11-20T14:01:05.000Z {rid.format(2)} Task timed out after 30.03 seconds"},
        {
            "timestamp": t + 65_100,
            "message": f"REPORT RequestId: {rid.format(2)}\tDuration: 30000.00 ms\tMax Memory Used: 250 MB\tStatus: timeout",
        },
        {"timestamp": t + 70_000, "message": f"REPORT RequestId: {rid.format(3)}\tDuration: 12.0 ms\tMax Memory Used: 96 MB"},
    ]
    minutes = facts.parse_log_events(events)
    t0 = t // 1000
    assert minutes[t0].invocations == 1 and minutes[t0].max_memory_mb == 80 and minutes[t0].timeouts == 0
    m1 = minutes[t0 + 60]
    assert (m1.invocations, m1.max_memory_mb, m1.timeouts) == (2, 250, 1)  # one timed-out request, two lines
