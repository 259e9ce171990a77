#!/usr/bin/env python3
"""Parses a /metrics scrape captured by tests/metrics.rs with PyPI prometheus-client's
parsers: the OpenMetrics parser (the format scimd serves) and the Prometheus text parser
(what older scrapers read). Reads the exposition on stdin; prints, as JSON, each family's
type and samples as the OpenMetrics parser read them; exits non-zero if either refuses it."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus

text = sys.stdin.read()
families = {}
for f in openmetrics(text):
    families[f.name] = {
        "type": f.type,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
    }
# The classic parser does not know `# EOF`; Prometheus itself stops there.
classic = [f.name for f in prometheus(text.replace("# EOF\n", ""))]
if not classic:
    sys.exit("the Prometheus text parser found no metric family")
json.dump(families, sys.stdout)
