"""Sandbox health checks: the pure state machine (state), the probes (probes), and the
scheduler that runs them off the DNS path and reports changes (monitor).

Not to be confused with dnsd.forward.health, which tracks *upstream* resolvers.
"""
