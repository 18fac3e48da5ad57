"""What the daemon counts and how Prometheus reads it.

The hot path never touches a prometheus object: listeners add to plain per-sandbox counters
(`counters.QueryStats`, once per batch of datagrams), the forwarder to `UpstreamStats`, the API
to `ApiStats`; `collector.DnsdCollector` turns them into metric families when scraped.
"""
