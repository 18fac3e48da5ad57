"""`dnsd network record add|ls|rm`: DNS records of a network that are not sandboxes."""

from __future__ import annotations

import argparse
import json

from .api_client import ApiClient
from .commands import table


def cmd_record_add(client: ApiClient, args: argparse.Namespace) -> int:
    record = client.add_record(args.network, args.name, args.type, args.value, ttl=args.ttl)
    if args.format == "json":
        print(json.dumps(record, indent=4))
    else:
        print(f"{record['Name']} {record['Type']} {record['Value']}")
    return 0


def cmd_record_ls(client: ApiClient, args: argparse.Namespace) -> int:
    records = client.records(args.network)
    if args.format == "json":
        print(json.dumps(records, indent=4))
        return 0
    rows = [
        (r["Name"], r["Type"], "default" if r["TTL"] is None else str(r["TTL"]), r["Value"])
        for r in records
    ]
    print(table(("NAME", "TYPE", "TTL", "VALUE"), rows))
    return 0


def cmd_record_rm(client: ApiClient, args: argparse.Namespace) -> int:
    client.remove_record(args.network, args.name, args.type, value=args.value)
    return 0
