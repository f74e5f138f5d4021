"""Logs support can search, with no personal data in them.

Personal data is masked by field (a name or an address looks like nothing in particular) and by
pattern, whole tokens only: the digits inside a request id, a hash or a UUID are never masked."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from app.logs import logging_config
from core.pii import redact, redact_field


@pytest.mark.parametrize("token", [
    "dcc3672aa93945829098083a1e937811",  # a request id support is quoted
    "123e4567-e89b-12d3-a456-426614174000",
    "426614174000",  # a 12-digit UUID segment on its own is not a card
    "sha256:9d2f51c8a1d7b3e6f0a4c2e8b6d4f2a0c8e6b4d2f0a8c6e4b2d0f8a6c4e2b0d8",
    "req_abc13812345678xyz",
    "/api/v1/contracts/42/pdf",
    "HT20261129A1B2C3D4E5",
])
def test_ids_and_paths_are_left_alone(token):
    assert redact(f"request {token} failed") == f"request {token} failed"


@pytest.mark.parametrize("text,secret,shown", [
    ("phone 13812345678", "13812345678", "138****5678"),
    ("phone +8613812345678.", "13812345678", "138****5678"),
    ("tel:86-13812345678", "13812345678", "138****5678"),
    ("id 11010519491231002X,", "11010519491231002X", "1101**********002X"),
    ("card=6222021234561234&x=1", "6222021234561234", "622202******1234"),
    ("card 6222021234567890123 end", "6222021234567890123", "622202*********0123"),
    ("/api/v1/users/13812345678/x", "13812345678", "138****5678"),
])
def test_personal_data_tokens_are_masked(text, secret, shown):
    out = redact(text)
    assert secret not in out and shown in out


def test_a_plus_86_phone_is_masked_as_a_phone_not_as_a_card():
    assert redact("+8613812345678") == "138****5678"
    assert redact("8613812345678") == "138****5678"


def test_fields_are_masked_by_what_they_hold():
    assert redact_field("person_name", "张三丰") == "张*丰"
    assert redact_field("address", "北京市朝阳区建国路1号") == "北京市朝阳区*****"
    assert redact_field("card_number", "6222021234561234") == "622202******1234"
    assert redact_field("card_number", "622202******1234") == "622202******1234"  # already masked
    nested = redact_field("data", {"cert_name": "李四", "note": "call 13812345678", "items": [{"phone": "13900001111"}]})
    assert nested == {"cert_name": "李*", "note": "call 138****5678", "items": [{"phone": "139****1111"}]}


def _capture():
    stream = io.StringIO()
    config = logging_config("INFO")
    config["handlers"]["json"]["stream"] = stream
    logging.config.dictConfig(config)
    return stream


def test_json_log_lines_mask_by_field_and_pattern_and_keep_ids():
    stream = _capture()
    try:
        logging.getLogger("app.test").warning(
            "lookup for 13812345678 in dcc3672aa93945829098083a1e937811",
            extra={"request_id": "dcc3672aa93945829098083a1e937811", "person_name": "王小明",
                   "detail": {"id_number": "11010519491231002X", "addr": "上海市浦东新区世纪大道100号"}},
        )
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["msg"] == "lookup for 138****5678 in dcc3672aa93945829098083a1e937811"
    assert line["request_id"] == "dcc3672aa93945829098083a1e937811"
    assert line["person_name"] == "王*明"
    assert line["detail"] == {"id_number": "1101**********002X", "addr": "上海市浦东新*********"}
    for secret in ("13812345678", "王小明", "11010519491231002X", "世纪大道"):
        assert secret not in stream.getvalue()
