import pytest

from services.esign.errors import ContractContextInvalid, TemplateNotFound
from handlers.miniprogram.contracts import TemplateOut
from services.esign.templates import TEMPLATES, get_template

from .helpers import CONTEXT


def text_of(code, ctx=CONTEXT, variant=None) -> str:
    return "\n".join(p.text for p in get_template(code).paragraphs(ctx, variant))


def test_the_template_list_names_the_three_contracts():
    listed = {t["code"]: t for t in (TemplateOut.of(t).model_dump() for t in TEMPLATES.values())}
    assert set(listed) == {"account_agreement", "etc_autodebit", "privacy_consent"}
    assert listed["account_agreement"]["subject_type"] == "account_application"
    assert listed["etc_autodebit"]["subject_type"] == "etc_binding"
    assert listed["privacy_consent"]["subject_type"] is None
    for t in listed.values():
        assert t["version"] == TEMPLATES[t["code"]].version
        assert t["title"]
    assert listed["account_agreement"]["variants"] == ["II", "III"]


def test_account_agreement_variants_state_their_own_limits():
    ii = text_of("account_agreement", variant="II")
    iii = text_of("account_agreement", variant="III")
    assert "人民币10,000.00元" in ii and "人民币200,000.00元" in ii
    assert "人民币2,000.00元" not in ii
    assert "人民币2,000.00元" in iii and "人民币50,000.00元" in iii
    assert "余额任何时点不得超过人民币2,000.00元" in iii
    assert "Ⅰ类银行结算账户或信用卡账户" in ii
    assert ii != iii


def test_variant_follows_account_class_and_is_required():
    assert "Ⅲ类" in text_of("account_agreement", {**CONTEXT, "account_class": "III"})
    with pytest.raises(ContractContextInvalid):
        text_of("account_agreement", {**CONTEXT, "account_class": None})
    with pytest.raises(ContractContextInvalid):
        text_of("account_agreement", variant="I")
    with pytest.raises(ContractContextInvalid):
        text_of("privacy_consent", variant="II")


def test_personal_data_is_masked_whatever_is_passed():
    for code in TEMPLATES:
        text = text_of(code)
        for raw in ("张三丰", "11010519491231002X", "13812345678", "6222021234561234", "11011234567890123456"):
            assert raw not in text, (code, raw)
    etc = text_of("etc_autodebit")
    assert "张*丰" in etc and "1101**********002X" in etc and "110112**********3456" in etc
    assert "京A12345（蓝色）" in etc
    assert "623058*********0018" in etc


def test_contract_date_is_printed_in_chinese():
    assert "2026年11月20日" in text_of("privacy_consent")
    with pytest.raises(ContractContextInvalid):
        text_of("privacy_consent", {"date": "next tuesday"})


def test_missing_required_context_is_refused():
    with pytest.raises(ContractContextInvalid) as err:
        text_of("etc_autodebit", {**CONTEXT, "etc_card_number": ""})
    assert err.value.field == "etc_card_number"
    assert err.value.status == 422


def test_unknown_template():
    with pytest.raises(TemplateNotFound) as err:
        get_template("loan_agreement")
    assert err.value.status == 404


def test_clauses_cover_what_each_contract_must_say():
    privacy = text_of("privacy_consent", {})
    for needle in ("JR/T 0171", "收集", "目的", "保存期限", "撤回同意", "删除", "C3", "C2"):
        assert needle in privacy, needle
    etc = text_of("etc_autodebit")
    for needle in ("通行费", "停车费", "加油费", "洗车费", "限额", "欠费", "撤销"):
        assert needle in etc, needle
