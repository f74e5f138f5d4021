"""Face verification 2.0 against a real sandbox server (subscribe messages: test_subscribe.py)."""

from __future__ import annotations

import base64
import hashlib
import secrets


from sandbox.face import cert_hash
from tests.sandbox.support import APPID2, assert_wx_error

CERT = {"cert_type": "IDENTITY_CARD", "cert_name": "张三", "cert_no": "310101199801011234"}


def independent_cert_hash(cert_type: str, cert_name: str, cert_no: str) -> str:
    parts = [
        ("cert_type", cert_type),
        ("cert_name", cert_name),
        ("cert_no", cert_no),
    ]
    s = "&".join(f"{k}={base64.standard_b64encode(v.encode('utf-8')).decode()}" for k, v in parts)
    return hashlib.sha256(s.encode()).hexdigest()


def test_cert_hash_matches_wechat_worked_example():
    # From WeChat's face 2.0 doc (api_getfaceidentifyimage): the joined string and its hash.
    joined = "cert_type=SURFTlRJVFlfQ0FSRA==&cert_name=5byg5LiJ&cert_no=MzEwMTAxMTk5ODAxMDExMjM0"
    expected = "3c241f7ff324977aeb91f173bb2a7b06569e6fd784d5573db34a636d8671108b"
    assert hashlib.sha256(joined.encode()).hexdigest() == expected
    assert independent_cert_hash(**CERT) == expected
    assert cert_hash(**CERT) == expected


def seq() -> str:
    return "seq_" + secrets.token_hex(8)


def get_verify_id(sb, token, openid, out_seq_no, cert=CERT) -> dict:
    return sb.wx_post(
        "cityservice/face/identify/getverifyid", token,
        {"out_seq_no": out_seq_no, "cert_info": cert, "openid": openid},
    )


def query(sb, token, verify_id, out_seq_no, openid, h=None) -> dict:
    return sb.wx_post(
        "cityservice/face/identify/queryverifyinfo", token,
        {"verify_id": verify_id, "out_seq_no": out_seq_no, "openid": openid,
         "cert_hash": h if h is not None else independent_cert_hash(**CERT)},
    )


def test_face_full_flow_pass(sb, token, user):
    out = seq()
    body = get_verify_id(sb, token, user, out)
    assert body["errcode"] == 0 and body["errmsg"] == "ok" and body["expires_in"] == 3600
    verify_id = body["verify_id"]
    assert 0 < len(verify_id) <= 256
    # user has not done it yet
    assert query(sb, token, verify_id, out, user) == {"errcode": 0, "errmsg": "ok", "verify_ret": 90100}
    r = sb.control("POST", f"face/{verify_id}", json={"result": "pass"})
    assert r.status_code == 200 and r.json() == {"verify_id": verify_id, "verify_ret": 10000}
    assert query(sb, token, verify_id, out, user) == {"errcode": 0, "errmsg": "ok", "verify_ret": 10000}
    info = sb.control("GET", f"face/{verify_id}").json()
    assert info["cert_name"] == "张三" and info["openid"] == user and info["out_seq_no"] == out


def test_face_fail_and_custom_codes(sb, token, user):
    out = seq()
    verify_id = get_verify_id(sb, token, user, out)["verify_id"]
    assert sb.control("POST", f"face/{verify_id}", json={"result": "fail"}).json()["verify_ret"] == 90004
    body = query(sb, token, verify_id, out, user)
    assert body["errcode"] == 0 and body["verify_ret"] == 90004
    sb.control("POST", f"face/{verify_id}", json={"result": "fail", "verify_ret": 10004})
    assert query(sb, token, verify_id, out, user)["verify_ret"] == 10004
    assert sb.control("POST", f"face/{verify_id}", json={"result": "maybe"}).status_code == 400
    assert sb.control("POST", "face/unknown-verify-id", json={"result": "pass"}).status_code == 404


def test_face_query_checks(sb, token, user):
    out = seq()
    verify_id = get_verify_id(sb, token, user, out)["verify_id"]
    sb.control("POST", f"face/{verify_id}", json={"result": "pass"})
    wrong = independent_cert_hash("IDENTITY_CARD", "张三", "310101199801011235")
    assert_wx_error(query(sb, token, verify_id, out, user, h=wrong), 47003)
    assert_wx_error(query(sb, token, verify_id, out, user, h=independent_cert_hash(**CERT).upper()), 47003)
    assert_wx_error(query(sb, token, verify_id, seq(), user), 47003)
    other_user = sb.login_code()["openid"]
    assert_wx_error(query(sb, token, verify_id, out, other_user), 47003)
    assert_wx_error(query(sb, token, "no-such-verify-id", out, user), 84001)
    # a verify_id is only visible to its own appid
    assert_wx_error(query(sb, sb.token(APPID2), verify_id, out, user), 84001)
    # still fine with the right values
    assert query(sb, token, verify_id, out, user)["verify_ret"] == 10000
    # expiry
    sb.control("POST", f"face/{verify_id}", json={"expires_in": 0})
    assert_wx_error(query(sb, token, verify_id, out, user), 84002)


def test_getverifyid_validation(sb, token, user):
    out = seq()
    assert get_verify_id(sb, token, user, out)["errcode"] == 0
    assert_wx_error(get_verify_id(sb, token, user, out), 47003)  # duplicate out_seq_no
    assert_wx_error(get_verify_id(sb, token, user, "ab"), 47003)  # too short
    assert_wx_error(get_verify_id(sb, token, user, "bad seq no!"), 47003)
    assert_wx_error(get_verify_id(sb, token, user, seq(), {"cert_type": "IDENTITY_CARD", "cert_name": "张三"}), 47001)
    assert_wx_error(get_verify_id(sb, token, user, seq(), {**CERT, "cert_type": "PASSPORT"}), 47003)
    assert_wx_error(get_verify_id(sb, token, "oNeverLoggedIn000000000000000", seq()), 40003)
    assert_wx_error(sb.wx_post("cityservice/face/identify/getverifyid", token, {"openid": user}), 47001)
    # the same out_seq_no is fine on another appid
    other = sb.login_code(appid=APPID2)["openid"]
    assert get_verify_id(sb, sb.token(APPID2), other, out)["errcode"] == 0
