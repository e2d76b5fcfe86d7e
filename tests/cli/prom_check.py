#!/usr/bin/env python3
"""Parses a Prometheus text exposition (jobq stats --prometheus) with the
reference parser, prometheus_client, and checks what libjobq promises of it.

    prom_check.py FILE KIND   exit 0 if it parses and holds KIND's families,
                              1 with the reason otherwise
"""
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    path, kind = sys.argv[1], sys.argv[2]
    text = open(path, encoding="utf-8").read()
    try:
        fams = {f.name: f for f in text_string_to_metric_families(text)}
    except Exception as e:  # any parse error fails the check
        print("parse error: %r" % (e,))
        return 1
    # (the parser names a counter family without its _total suffix)
    want = {
        "jobq_queue_jobs": "gauge", "jobq_oldest_queued_seconds": "gauge", "jobq_error_ratio": "gauge",
        "jobq_job_duration_seconds": "histogram", "jobq_job_duration_average_seconds": "gauge",
        "jobq_concurrency": "gauge", "jobq_cache_lookups": "counter",
        "jobq_rate_limit_waits": "counter", "jobq_running_here": "gauge",
        "jobq_storage_healthy": "gauge", "jobq_storage_errors": "counter",
        "jobq_storage_failing_since_seconds": "gauge",
    }
    for name, typ in want.items():
        if name not in fams:
            print("missing family %s (have %s)" % (name, sorted(fams)))
            return 1
        if fams[name].type != typ:
            print("family %s is a %s, not a %s" % (name, fams[name].type, typ))
            return 1
    samples = [s for f in fams.values() for s in f.samples]
    outcomes = {s.labels.get("outcome") for s in samples
                if s.name == "jobq_jobs_total" and s.labels.get("kind") == kind}
    if outcomes != {"started", "succeeded", "failed", "retried", "cancelled"}:
        print("jobq_jobs_total of %s has outcomes %s" % (kind, outcomes))
        return 1
    states = {s.labels.get("state") for s in samples
              if s.name == "jobq_queue_jobs" and s.labels.get("kind") == kind}
    if states != {"queued", "scheduled", "running"}:
        print("jobq_queue_jobs of %s has states %s" % (kind, states))
        return 1
    buckets = [s for s in samples
               if s.name == "jobq_job_duration_seconds_bucket" and s.labels.get("kind") == kind]
    count = [s.value for s in samples
             if s.name == "jobq_job_duration_seconds_count" and s.labels.get("kind") == kind]
    if not buckets or buckets[-1].labels.get("le") != "+Inf" or count != [buckets[-1].value]:
        print("the duration histogram of %s is incomplete" % kind)
        return 1
    values = [b.value for b in buckets]
    if values != sorted(values):
        print("the duration buckets of %s are not cumulative: %s" % (kind, values))
        return 1
    for s in samples:
        if s.name.endswith("_total") and (math.isnan(s.value) or s.value < 0):
            print("counter %s%s is %s" % (s.name, s.labels, s.value))
            return 1
    print("ok: %d families, %d samples" % (len(fams), len(samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
