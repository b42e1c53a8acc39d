"""otklik's Grafana dashboards, written in code with grafana-foundation-sdk.

``otklik grafana generate`` (or ``make dashboards``) writes them to ``deploy/grafana/dashboards/*.json``,
which Grafana's file provisioning and ``otklik grafana push`` (:mod:`.push`) both read; a unit test fails
when the checked-in JSON is not what :mod:`.dashboards` generates from the building blocks in :mod:`.blocks`.

Every panel reads only what the worker, the gateway and the notifier export (streams/worker/metrics.py,
streams/edge/gateway.py, streams/notify/notifier.py), the recording rules in deploy/prometheus/rules/, or
Prometheus's own ``up`` and ``ALERTS``; the unit test checks that too. What the metrics cannot say,
the panels do not pretend to: there is no per-page latency (docs/metrics-and-alerts.md forbids per-page
histograms), and the sector histogram has no region label (three histograms, never their cross product).

Identities are stable: fixed dashboard uids, one folder uid, one datasource uid.
"""
