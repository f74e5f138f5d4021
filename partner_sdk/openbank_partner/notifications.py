"""Receiving the bank's notifications in the partner's web handler.

::

    try:
        event = parse_notification(SECRET, request.method, CALLBACK_URL, request.headers, raw_body)
    except SignatureError:
        return 401                      # not from the bank (or stale): ignore it
    if not already_processed(event.event_id):   # the bank redelivers until it gets a 2xx
        handle(event)
    return 204                          # any 2xx acknowledges

Verify over the raw body bytes exactly as received, before any JSON parsing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .errors import ProtocolError
from .models import Notification
from .signing import TOLERANCE_S, _header, verify_notification

__all__ = ["parse_notification"]


def parse_notification(
    secret: str | Sequence[str],
    method: str,
    path_with_query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    app_id: str | None = None,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> Notification:
    """Verify a notification (see :func:`~openbank_partner.signing.verify_notification`), then parse it.

    ``path_with_query`` is the callback URL registered with the bank, or the path and query of the
    request line as received. Raises :class:`~openbank_partner.SignatureError` when verification fails
    and :class:`~openbank_partner.ProtocolError` for a correctly signed body of the wrong shape.
    Partners must deduplicate on ``event_id``: an event is redelivered until acknowledged with a 2xx.
    """
    verify_notification(secret, method, path_with_query, headers, body, now, tolerance_s, app_id=app_id)
    try:
        obj = json.loads(body)
        data = obj["data"]
        if not isinstance(data, dict):
            raise TypeError("data is not an object")
        return Notification(
            event_id=str(obj["event_id"]), type=str(obj["type"]), occurred_at=str(obj["occurred_at"]),
            data=data, app_id=_header(headers, "X-App-Id") or "", raw=obj,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"not a notification: {exc!r}") from exc
