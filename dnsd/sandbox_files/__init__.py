"""The files a sandbox reads its resolver setup from: resolv.conf, hosts, written safely.

`resolvconf` renders resolv.conf and derives upstreams, `hosts` renders /etc/hosts, `managed`
writes them atomically without clobbering a user's edits, `host` is the host's resolver
configuration as last read, and `writer` keeps every sandbox's files in step with the registry.
"""
