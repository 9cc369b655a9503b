"""`rollguard status`: the running daemon's live view, for people (a table) or machines (--json)."""
from __future__ import annotations

import argparse
import json
import sys
import urllib.error

from service.commands.base import fail, load_or_exit
from service.settings import Settings
from service.status import DEFAULT_TIMEOUT_S, fetch_status, render_status, status_url

PROG = "rollguard status"


def main(argv: list[str], *, settings: Settings | None = None) -> int:
    """``settings`` (default: loaded from the environment) give the address and the bearer token."""
    parser = argparse.ArgumentParser(prog=PROG, description="Live view from the running daemon.")
    parser.add_argument("--json", action="store_true", help="print the raw /v1/status JSON")
    parser.add_argument("--addr", help="the daemon's HOST:PORT (default: ROLLGUARD_HTTP_ADDR, 127.0.0.1:8787)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for an answer")
    args = parser.parse_args(argv)
    if settings is None:
        settings = load_or_exit(PROG)
    addr = args.addr or settings.http_addr
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        return fail(PROG, f"cannot connect to {addr!r}: need HOST:PORT with a port 1..65535 "
                          "(a daemon bound to port 0 logs its port as `http listening on HOST:PORT`)")
    url = status_url(addr)
    try:
        token = settings.http_bearer_token()
    except ValueError as ex:  # the token file changed since the settings were read
        return fail(PROG, f"ROLLGUARD_HTTP_TOKEN_FILE: {ex}")
    try:
        doc = fetch_status(url, args.timeout, token)
    except urllib.error.HTTPError as ex:
        hint = ""
        if ex.code == 401:
            hint = ("; set ROLLGUARD_HTTP_TOKEN or ROLLGUARD_HTTP_TOKEN_FILE to the daemon's token" if token is None
                    else "; the token does not match the daemon's")
        return fail(PROG, f"the daemon at {url} answered HTTP {ex.code} {ex.reason}{hint}")
    except (OSError, ValueError) as ex:
        reason = getattr(ex, "reason", None) or ex
        return fail(PROG, f"no rollguard daemon answering at {url} ({reason}); "
                          "is `rollguard run` running? (set --addr or ROLLGUARD_HTTP_ADDR)")
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_status(doc))
    return 0
