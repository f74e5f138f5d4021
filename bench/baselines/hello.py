"""Baseline: a Sanic hello route, nothing else (what the framework costs)."""

import argparse

from sanic import Sanic
from sanic.config import Config
from sanic.response import json

config = Config()
config.AUTO_EXTEND = False
app = Sanic("baseline_hello", config=config)
app.config.ACCESS_LOG = False


@app.get("/hello")
async def hello(request):
    return json({"status": "ok"})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app.run(host="127.0.0.1", port=args.port, single_process=True, access_log=False, motd=False)
