"""Names from the host: the `--host-dns` listeners, systemd-resolved registration and
`--host-hosts-file` (see service.py)."""
