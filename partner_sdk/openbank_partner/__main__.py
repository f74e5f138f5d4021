"""``python -m openbank_partner sign ...``: print a request's signed string and signing headers.

For checking another implementation of the scheme against this one, or debugging a ``SIGNATURE_INVALID``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .signing import NONCE_RE, body_sha256, new_nonce, request_string, sign, split_target

BEGIN = "----- signed string (lines joined by \\n, no trailing newline) -----"
END = "----- end of signed string -----"


def render_sign(secret: str, app_id: str, method: str, target: str, body: bytes, timestamp: int, nonce: str) -> str:
    """The ``sign`` command's output, without its final newline."""
    path, query = split_target(target)
    string = request_string(method, path, query, timestamp, nonce, body)
    return "\n".join([
        BEGIN, string, END,
        f"body sha256: {body_sha256(body)}",
        f"X-App-Id: {app_id}",
        f"X-Timestamp: {timestamp}",
        f"X-Nonce: {nonce}",
        f"X-Signature: {sign(secret, string)}",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openbank_partner", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("sign", help="sign a request to the bank (or a notification, to test a handler)")
    p.add_argument("--secret", required=True, help="the partner secret")
    p.add_argument("--app-id", required=True, help="the partner app id")
    p.add_argument("--method", default="GET", help="HTTP method (default GET)")
    p.add_argument("--path", required=True, help="path and query as on the request line, e.g. /open/v1/debits")
    body = p.add_mutually_exclusive_group()
    body.add_argument("--body", default="", help="the body, as text (sent as its UTF-8 bytes)")
    body.add_argument("--body-file", help="read the body bytes from this file ('-' for standard input)")
    p.add_argument("--timestamp", type=int, help="Unix seconds (default: now)")
    p.add_argument("--nonce", help="the nonce (default: a fresh random one)")
    args = parser.parse_args(argv)
    if args.nonce is not None and not NONCE_RE.fullmatch(args.nonce):
        parser.error("--nonce: 16-64 characters of A-Z a-z 0-9 _ -")

    if args.body_file == "-":
        data = sys.stdin.buffer.read()
    elif args.body_file:
        with open(args.body_file, "rb") as f:
            data = f.read()
    else:
        data = args.body.encode("utf-8")
    timestamp = int(time.time()) if args.timestamp is None else args.timestamp
    print(render_sign(args.secret, args.app_id, args.method, args.path, data, timestamp, args.nonce or new_nonce()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
