"""The README's worked signing example is what the server computes, and what the partner SDK's README
shows: a partner reproducing it gets the bank's own answer."""

from __future__ import annotations

import re

from services.partners import signing
from tests.e2e.servers import ROOT


def example(text: str) -> dict[str, str]:
    block = text.split("## The partner open API", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    fields = dict(re.findall(r"^(app id|secret|timestamp|nonce|request|body)\s+(.+)$", block, re.M))
    fields["signed"] = block.split("signed string (lines joined by \\n):\n", 1)[1].split("\n\nX-Signature", 1)[0]
    fields["signature"] = re.search(r"^X-Signature: ([0-9a-f]{64})$", block, re.M).group(1)
    return fields


def test_the_readme_example_is_what_the_server_computes():
    ex = example((ROOT / "README.md").read_text(encoding="utf-8"))
    method, path = ex["request"].split(" ", 1)
    text = signing.request_string(method, path, "", ex["timestamp"], ex["nonce"], ex["body"].encode())
    assert text == ex["signed"]
    assert signing.sign(ex["secret"], text) == ex["signature"]


def test_the_sdk_readme_shows_the_same_signature():
    sdk = (ROOT / "partner_sdk" / "README.md").read_text(encoding="utf-8")
    ex = example((ROOT / "README.md").read_text(encoding="utf-8"))
    assert f"X-Signature: {ex['signature']}" in sdk and ex["body"] in sdk and ex["secret"] in sdk
