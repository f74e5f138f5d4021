"""What the emulated api.weixin.qq.com answers for paths and methods that are not an API."""

from __future__ import annotations

import pytest

from tests.sandbox.support import APPID, SECRET, assert_wx_error


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["cgi-bin/no_such_api", "wxa/getwxacodeunlimit_typo", "sns/jscode2session/extra",
                                  "x", ""])
def test_unknown_paths_answer_48001_in_wechat_body(sb, method, path):
    r = sb.http.request(method, f"{sb.sb.wechat}/{path}", params={"access_token": "whatever"}, json={"a": 1})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"errcode", "errmsg"}
    assert_wx_error(body, 48001)
    assert body["errmsg"].startswith("api unauthorized")


def test_unknown_paths_are_logged(sb):
    sb.http.get(f"{sb.sb.wechat}/cgi-bin/logged_unknown")
    assert [(c["path"], c["errcode"], c["http_status"]) for c in sb.calls("cgi-bin/logged_unknown")] == [
        ("cgi-bin/logged_unknown", 48001, 200)]


def test_wrong_method_on_known_api(sb):
    # GET-only APIs answer 43001 "require GET method", POST APIs 43002 "require POST method"
    r = sb.http.post(f"{sb.sb.wechat}/sns/jscode2session",
                     params={"appid": APPID, "secret": SECRET, "js_code": "x", "grant_type": "authorization_code"})
    assert r.status_code == 200
    assert_wx_error(r.json(), 43001)
    r = sb.http.put(f"{sb.sb.wechat}/cgi-bin/stable_token", json={})
    assert r.status_code == 200
    assert_wx_error(r.json(), 43002)
    r = sb.http.delete(f"{sb.sb.wechat}/wxa/business/getuserphonenumber", params={"access_token": sb.token()})
    assert_wx_error(r.json(), 43002)
