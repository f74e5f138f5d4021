"""``python -m sandbox [--host 127.0.0.1] [--port 8100]``: run the sandbox emulators standalone
(one process, one worker), configured from SANDBOX_APPS, SANDBOX_CARDNET_KEYS, SANDBOX_STATE_PATH,
SANDBOX_PAGES or SANDBOX_APP_JSON (see :mod:`sandbox.config`)."""

from __future__ import annotations

import argparse
import sys

from sandbox.config import SandboxConfig
from sandbox.server import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    config = SandboxConfig.from_env()
    app = create_app(config)
    base = f"http://{args.host}:{args.port}"
    print(f"sandbox state:   {config.state_path}", flush=True)
    print(f"sandbox apps:    {', '.join(config.apps)}", flush=True)
    print(f"sandbox pages:   {len(config.pages)} (subscribe messages may link to these only)", flush=True)
    print(f"WeChat API base: {base}/sandbox/wechat/", flush=True)
    print(f"card network:    {base}/sandbox/cardnet/", flush=True)
    print(f"control API:     {base}/sandbox/control/", flush=True)
    sys.stdout.flush()
    app.run(host=args.host, port=args.port, single_process=True, motd=False, access_log=args.access_log)


if __name__ == "__main__":
    main()
