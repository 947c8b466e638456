"""Harnesses for the tests and benchmarks, kept apart from the product (``cms_dagster`` never imports them).

- :mod:`cms_harness.cloudwatch_standin`: a CloudWatch stand-in below botocore that enforces CloudWatch's real
  limits (paging, query and datapoint caps, throttling), for collector tests and ``benchmarks/collect.py``;
- :mod:`cms_harness.nab_scoring`: scoring by the Numenta Anomaly Benchmark's rules (``benchmarks/nab.py``);
- :mod:`cms_harness.rca_evaluation`: incident sampling, starts from the detector, baselines and AC@k for
  ``benchmarks/rca_eval.py``;
- :mod:`cms_harness.openai_standin`: a local server that speaks the OpenAI Chat Completions API (structured
  output, errors, delays, malformed answers) for the LLM, incident and question tests;
- :mod:`cms_harness.postgres`: a throw-away PostgreSQL server from Debian's binaries, for the orchestrator
  tests (Dagster on PostgreSQL) and ``benchmarks/backfill_scale.py``.
"""
