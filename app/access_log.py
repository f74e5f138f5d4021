"""The access log: one JSON line per request, in the shape of every other log line
(``app.logs.JsonFormatter``: ``ts``, ``level``, ``logger``, ``msg`` and the fields).

A line carries only values that cannot hold personal data (the request id, checked on the way in; the
method; the route *template*, never the raw path; the status; the duration), so it skips the redaction
filter. Requests only append a tuple (``app.middleware.finish``); the lines are formatted and written
in one ``write`` per batch by the app's background flusher, and at shutdown.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import TextIO


class AccessLog:
    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream  # None: sys.stderr at the time of writing
        self._second = -1
        self._prefix = ""
        self._middles: dict[tuple[str, str], str] = {}

    def write(self, observations: list[tuple]) -> None:
        """``observations``: ``(wall_time, request_id, method, route, status, seconds)`` each."""
        if not self.enabled or not observations:
            return
        lines = []
        for at, rid, method, route, status, seconds in observations:
            second = int(at)
            if second != self._second:
                self._second = second
                self._prefix = '{"ts": "' + datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            middle = self._middles.get((method, route))
            if middle is None:
                middle = self._middles[(method, route)] = (
                    f'"method": "{method}", "route": {json.dumps(route, ensure_ascii=False)}, "status": '
                )
            lines.append(
                f'{self._prefix}.{int((at - second) * 1000):03d}+00:00", "level": "INFO", "logger": "app.access", '
                f'"msg": "request", "request_id": "{rid}", {middle}{status}, "ms": {seconds * 1000:.2f}}}\n'
            )
        stream = self.stream or sys.stderr
        stream.write("".join(lines))
        stream.flush()
