"""Versioned contract templates: one table, ``TEMPLATES``, keyed by template code.

A template turns a context dict into the contract's paragraphs. The version is part of what gets signed
(it is in the PDF's metadata and footer), so any change to a template's wording must bump its version:
a contract signed under ``2026.11-1`` must stay reproducible as ``2026.11-1``.

Context keys (all optional unless the template lists them in ``required``):

* ``signer_name``, ``signer_id_number``, ``signer_phone``: the signer. Masked here whatever is passed
  (the masks in ``core.pii`` are idempotent), because the PDF is a document the user downloads and
  shares: JR/T 0171 C2 data appears on it only masked.
* ``account_class``: ``"II"`` or ``"III"``; the variant of ``account_agreement`` when none is given, and
  which limits ``etc_autodebit`` quotes (both when absent).
* ``account_number``: the electronic account (absent before the account is opened).
* ``bound_card_number``: the same-name Class I / credit card bound to the account.
* ``plate_number``, ``plate_color``, ``etc_card_number``: the vehicle and its ETC card.
* ``date``: the contract date (``datetime.date`` or ISO string); defaults to today in Beijing time.
  Pass it: the same inputs must render the same bytes.
* ``bank_name``: the bank's legal name (defaults to the sandbox bank).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.clock import china_day
from core.money import yuan as _yuan
from core.pii import mask_card, mask_id_number, mask_name, mask_phone

from services.accounts.rules import CLASS_III_ID_COLLECTION_FEN, rules_for

from .errors import ContractContextInvalid, TemplateNotFound

DEFAULT_BANK_NAME = "沙箱银行股份有限公司"

ParaKind = Literal["party", "heading", "clause", "note"]


@dataclass(frozen=True)
class Para:
    """One paragraph of a contract. ``party``: the parties block; ``heading``: an article title;
    ``clause``: body text; ``note``: small print."""

    text: str
    kind: ParaKind = "clause"


# The account-class rules come from the accounts service's one versioned table: the agreement states
# exactly what the code enforces (services/accounts/rules.py says when to bump versions).
def _terms(account_class: str) -> dict[str, Any]:
    r = rules_for(account_class)
    return {"label": r.label, "daily_outflow_fen": r.daily_outflow_fen, "yearly_outflow_fen": r.yearly_outflow_fen,
            "balance_cap_fen": r.balance_cap_fen, "max_accounts": r.max_accounts_per_person}


PLATE_COLORS = {
    "blue": "蓝色",
    "yellow": "黄色",
    "black": "黑色",
    "white": "白色",
    "gradient_green": "渐变绿色",
    "yellow_green": "黄绿双拼色",
}


def yuan(fen: int) -> str:
    """``1_000_000`` -> ``"人民币10,000.00元"``."""
    return f"人民币{_yuan(fen)}元"


def _date_text(value: Any) -> str:
    if value is None:
        value = china_day()
    elif isinstance(value, dt.datetime):
        value = china_day(value) if value.tzinfo else value.date()
    elif isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError as exc:
            raise ContractContextInvalid("合同日期格式不正确", field="date") from exc
    if not isinstance(value, dt.date):
        raise ContractContextInvalid("合同日期格式不正确", field="date")
    return f"{value.year}年{value.month}月{value.day}日"


def _text(ctx: Mapping[str, Any], key: str) -> str | None:
    value = ctx.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def normalise_context(ctx: Mapping[str, Any]) -> dict[str, str]:
    """Display strings for every key a template may print, PII masked, absent ones as ``None``."""
    out: dict[str, Any] = {}
    name = _text(ctx, "signer_name")
    out["signer_name"] = mask_name(name) if name else None
    idn = _text(ctx, "signer_id_number")
    out["signer_id_number"] = mask_id_number(idn.upper()) if idn else None
    phone = _text(ctx, "signer_phone")
    out["signer_phone"] = mask_phone(phone) if phone else None
    for key in ("account_number", "bound_card_number", "etc_card_number"):
        value = _text(ctx, key)
        out[key] = mask_card(value.replace(" ", "")) if value else None
    plate = _text(ctx, "plate_number")
    out["plate_number"] = plate.upper() if plate else None
    color = _text(ctx, "plate_color")
    out["plate_color"] = PLATE_COLORS.get(color, color) if color else None
    out["account_class"] = _text(ctx, "account_class")
    out["date"] = _date_text(ctx.get("date"))
    out["bank_name"] = _text(ctx, "bank_name") or DEFAULT_BANK_NAME
    return out


Body = Callable[[dict[str, Any], str | None], list[Para]]


@dataclass(frozen=True)
class Template:
    code: str
    version: str
    title: str
    subject_type: str | None  # what the contract's subject_id points at
    body: Body = field(repr=False)
    variants: Mapping[str, str] = field(default_factory=dict)  # variant -> title
    required: tuple[str, ...] = ()

    def resolve_variant(self, variant: str | None, ctx: Mapping[str, Any]) -> str | None:
        if not self.variants:
            if variant is not None:
                raise ContractContextInvalid(f"模板 {self.code} 没有版本变体 {variant}", field="variant")
            return None
        variant = variant or _text(ctx, "account_class")
        if variant not in self.variants:
            raise ContractContextInvalid(
                f"请指定账户类别（{'/'.join(self.variants)}）", field="account_class"
            )
        return variant

    def title_for(self, variant: str | None) -> str:
        return self.variants.get(variant, self.title) if variant else self.title

    def paragraphs(self, context: Mapping[str, Any], variant: str | None = None) -> list[Para]:
        variant = self.resolve_variant(variant, context)
        ctx = normalise_context(context)
        missing = [key for key in self.required if not ctx.get(key)]
        if missing:
            raise ContractContextInvalid(f"缺少合同要素：{', '.join(missing)}", field=missing[0])
        if variant:
            ctx["account_class"] = variant
        return self.body(ctx, variant)


def _or(value: str | None, placeholder: str) -> str:
    return value if value else placeholder


# ---------------------------------------------------------------------------------------------------
# account_agreement (Class II / Class III)


def _account_agreement(c: dict[str, Any], variant: str | None) -> list[Para]:
    assert variant is not None
    t = _terms(variant)
    label = t["label"]
    bank = c["bank_name"]
    p: list[Para] = [
        Para(f"甲方（账户申请人）：{c['signer_name']}", "party"),
        Para(f"身份证件号码：{c['signer_id_number']}　　手机号码：{_or(c['signer_phone'], '—')}", "party"),
        Para(f"乙方（开户银行）：{bank}", "party"),
        Para(
            f"账户类别：个人{label}银行结算账户（电子账户）　　"
            f"账号：{_or(c['account_number'], '开户成功后由乙方系统分配')}",
            "party",
        ),
        Para(f"绑定账户：{_or(c['bound_card_number'], '以开户时核验通过的同名账户为准')}", "party"),
        Para(f"签署日期：{c['date']}", "party"),
        Para(
            f"为明确双方权利义务，甲方通过乙方微信小程序以非面对面方式申请开立个人{label}银行结算账户"
            "（以下简称“本账户”），双方依据《中华人民共和国民法典》《人民币银行结算账户管理办法》"
            "及中国人民银行关于个人银行账户分类管理的有关规定，订立本协议。"
        ),
        Para("第一条　开户条件与身份核验", "heading"),
    ]
    if variant == "II":
        verify = (
            "甲方同意乙方通过以下方式核实其身份：身份证件影像识别与要素比对、人脸识别核验，以及绑定"
            "一张甲方本人同名的Ⅰ类银行结算账户或信用卡账户，核验姓名、身份证件号码、手机号码、"
            "绑定账户账号及该账户为Ⅰ类户或信用卡账户等要素。任一要素核验不通过的，乙方有权拒绝开户。"
        )
    else:
        verify = (
            "甲方同意乙方通过以下方式核实其身份：身份证件影像识别与要素比对、人脸识别核验，以及绑定"
            "一个甲方本人同名的银行账户，核验姓名、身份证件号码、手机号码及绑定账户账号等要素。"
            "任一要素核验不通过的，乙方有权拒绝开户。"
        )
    p += [
        Para("1.1　甲方应为具有完全民事行为能力的中国大陆居民，使用本人有效居民身份证申请开户，"
             "并保证所提供的信息真实、准确、完整、有效。"),
        Para("1.2　" + verify),
        Para(f"1.3　按照监管规定，甲方在乙方开立的{label}户原则上不超过{t['max_accounts']}个；"
             "超出的，乙方有权拒绝开户。"),
        Para("第二条　账户功能与交易限额", "heading"),
    ]
    daily, yearly = yuan(t["daily_outflow_fen"]), yuan(t["yearly_outflow_fen"])
    if variant == "II":
        p += [
            Para("2.1　本账户可办理存款、购买乙方发售的投资理财产品、限额消费和缴费、限额向非绑定"
                 "账户转出资金等业务；与绑定账户之间的资金划转不受下述限额限制。"),
            Para(f"2.2　本账户消费、缴费（含ETC通行费、停车费等代扣）、向非绑定账户转出资金及取出"
                 f"现金合计，日累计限额为{daily}，年累计限额为{yearly}。"),
            Para("2.3　非绑定账户向本账户转入资金、存入现金，须经乙方面对面或同等效力的方式确认"
                 "身份后方可办理；本账户不发放实体卡片，不得透支。"),
        ]
    else:
        p += [
            Para("2.1　本账户可办理限额消费和缴费、限额向非绑定账户转出资金等业务；与绑定账户之间"
                 "的资金划转按乙方公示的规则办理。"),
            Para(f"2.2　本账户余额任何时点不得超过{yuan(t['balance_cap_fen'])}；超出部分的转入"
                 "将被拒绝或原路退回。"),
            Para(f"2.3　本账户消费、缴费（含ETC通行费、停车费等代扣）及向非绑定账户转出资金合计，"
                 f"日累计限额为{daily}，年累计限额为{yearly}。甲方在乙方所有Ⅲ类户累计收付达到"
                 f"{yuan(CLASS_III_ID_COLLECTION_FEN)}的，应按乙方要求在七日内补充身份信息，逾期未补充的，"
                 "乙方有权暂停本账户的非柜面业务。"),
        ]
    p += [
        Para("2.4　上述限额为监管上限，乙方可根据风险管理需要在此范围内调低，并在小程序中公示。"),
        Para("第三条　甲方的权利与义务", "heading"),
        Para("3.1　甲方应妥善保管账户信息、交易密码、短信验证码及登录设备，不得向任何人透露；"
             "因甲方泄露上述信息导致的损失，由甲方自行承担。"),
        Para("3.2　甲方不得出租、出借、出售、购买本账户，不得将本账户用于洗钱、恐怖融资、"
             "电信网络诈骗、赌博等违法犯罪活动，否则乙方有权中止或终止服务，并依法报告有关部门。"),
        Para("3.3　甲方身份证件到期、手机号码等信息变更的，应及时通过小程序更新；逾期未更新的，"
             "乙方有权按规定暂停本账户的部分或全部业务。"),
        Para("第四条　乙方的权利与义务", "heading"),
        Para("4.1　乙方依法为甲方的账户信息、交易信息保密，按《个人信息处理授权同意书》处理甲方"
             "的个人信息。"),
        Para("4.2　乙方发现本账户存在异常交易、涉嫌冒名开户或被用于违法犯罪活动的，有权采取"
             "延长核验、限制交易、暂停非柜面业务直至销户等措施，并及时通知甲方。"),
        Para("4.3　本账户连续一年以上无交易且无余额的，乙方可按规定将其纳入久悬账户管理或予以关闭。"),
        Para("第五条　电子签名与协议效力", "heading"),
        Para("5.1　甲方同意以在线手写签名并经人脸识别确认意愿的方式签署本协议，该电子签名依照"
             "《中华人民共和国电子签名法》第十四条与手写签名具有同等法律效力。"),
        Para("5.2　乙方以其数字证书对签署后的本协议加具数字签名（PAdES），签署后对本协议的任何"
             "改动均可被检测；乙方保存签署过程的证据记录，甲方可在小程序中下载并验证本协议。"),
        Para("第六条　协议变更、终止与争议解决", "heading"),
        Para("6.1　乙方变更本协议的，将提前十五日在小程序中公告；甲方不同意的，可申请销户。"
             "甲方可随时申请注销本账户，注销前应结清账户余额及欠款。"),
        Para("6.2　因本协议发生的争议，双方协商解决；协商不成的，任何一方可向乙方住所地有管辖权的"
             "人民法院提起诉讼。"),
        Para("6.3　本协议自甲方完成电子签名且乙方加具数字签名之日起生效，至本账户注销之日终止。"),
    ]
    return p


# ---------------------------------------------------------------------------------------------------
# etc_autodebit


def _etc_autodebit(c: dict[str, Any], variant: str | None) -> list[Para]:
    bank = c["bank_name"]
    plate = c["plate_number"] + (f"（{c['plate_color']}）" if c["plate_color"] else "")
    ii, iii = _terms("II"), _terms("III")
    ii_text = f"Ⅱ类户日累计{yuan(ii['daily_outflow_fen'])}、年累计{yuan(ii['yearly_outflow_fen'])}"
    iii_text = (
        f"Ⅲ类户日累计{yuan(iii['daily_outflow_fen'])}、年累计{yuan(iii['yearly_outflow_fen'])}，"
        f"且账户余额不超过{yuan(iii['balance_cap_fen'])}"
    )
    # The account's class when known (it is the bound account's), else both rules.
    limits = {"II": ii_text, "III": iii_text}.get(c["account_class"], f"{ii_text}；{iii_text}") + "。"
    return [
        Para(f"授权人（甲方）：{c['signer_name']}", "party"),
        Para(f"身份证件号码：{c['signer_id_number']}　　手机号码：{_or(c['signer_phone'], '—')}", "party"),
        Para(f"被授权人（乙方）：{bank}", "party"),
        Para(f"车辆号牌：{plate}　　ETC用户卡号：{c['etc_card_number']}", "party"),
        Para(f"扣款账户：{c['account_number']}", "party"),
        Para(f"签署日期：{c['date']}", "party"),
        Para("甲方为使用电子不停车收费（ETC）及相关车辆服务，自愿将上述ETC用户卡及车载单元（OBU）"
             "与上述扣款账户绑定，并就自动扣款事宜向乙方作出如下授权。"),
        Para("第一条　授权事项", "heading"),
        Para("1.1　甲方授权乙方，根据ETC发行服务机构、停车场运营方、加油站、洗车服务商等乙方合作机构"
             "（以下简称“合作机构”）通过乙方开放接口提交的扣款请求，从扣款账户中直接扣划上述车辆及"
             "ETC用户卡产生的高速公路通行费、停车费、加油费、洗车费等费用，无需甲方逐笔确认。"),
        Para("1.2　扣款金额以合作机构提交、并经乙方验证签名与交易要素的交易数据为准；同一笔交易"
             "仅扣款一次，合作机构重复提交的，乙方返回首次处理结果，不重复扣款。"),
        Para("第二条　扣款限额", "heading"),
        Para("2.1　上述扣款属于消费缴费，计入扣款账户的交易限额：" + limits),
        Para("2.2　甲方应确保扣款账户余额充足。余额或可用限额不足的，该笔扣款失败，乙方不作部分扣款。"),
        Para("第三条　欠费处理", "heading"),
        Para("3.1　扣款失败的款项记为欠费，乙方将通过小程序消息通知甲方。甲方可在小程序中通过微信支付"
             "补缴欠费，补缴成功后欠费即告结清。"),
        Para("3.2　欠费未及时结清的，ETC发行服务机构可按其规则将ETC用户卡列入状态名单，车辆可能无法"
             "正常通行ETC车道，由此产生的后果由甲方承担。"),
        Para("第四条　异议与退款", "heading"),
        Para("4.1　甲方对扣款有异议的，可自扣款之日起六十日内通过小程序或客服渠道提出。经乙方会同"
             "合作机构核实属于错误扣款或重复扣款的，相应款项原路退回扣款账户。"),
        Para("第五条　授权期限与撤销", "heading"),
        Para("5.1　本授权自甲方签署且乙方加具数字签名之日起生效，至甲方解除ETC绑定、撤销本授权或"
             "扣款账户注销之日终止。"),
        Para("5.2　甲方可随时在小程序中解除绑定或撤销本授权。撤销前已发生的交易，乙方仍有权按本授权"
             "扣款；撤销后，该ETC用户卡不得再以扣款账户扣款。"),
        Para("第六条　信息使用与其他", "heading"),
        Para("6.1　为完成扣款，乙方与合作机构之间仅交换完成交易所必需的信息（车辆号牌及颜色、"
             "ETC用户卡号、交易时间、地点与金额、扣款结果），具体依《个人信息处理授权同意书》执行。"),
        Para("6.2　甲方以在线手写签名并经人脸识别确认意愿的方式签署本授权书，与手写签名具有同等"
             "法律效力。未尽事宜，适用甲方与乙方签订的账户服务协议。"),
    ]


# ---------------------------------------------------------------------------------------------------
# privacy_consent


def _privacy_consent(c: dict[str, Any], variant: str | None) -> list[Para]:
    bank = c["bank_name"]
    signer = c["signer_name"] or "—"
    return [
        Para(f"个人信息主体（您）：{signer}　　手机号码：{_or(c['signer_phone'], '—')}", "party"),
        Para(f"个人信息处理者（我们）：{bank}", "party"),
        Para(f"签署日期：{c['date']}", "party"),
        Para("为向您提供远程开户、电子签约、ETC自动扣款及支付服务，我们需要处理您的个人信息。"
             "我们依据《中华人民共和国个人信息保护法》《中华人民共和国反洗钱法》及《个人金融信息"
             "保护技术规范》（JR/T 0171—2020）制定本同意书。请您仔细阅读，特别是第二条中关于"
             "敏感个人信息的说明。"),
        Para("一、我们收集的个人信息", "heading"),
        Para("1.1　身份信息：姓名、性别、民族、出生日期、住址、身份证件号码及有效期、身份证件正反面影像。"),
        Para("1.2　核验信息：人脸识别核验结果（由微信人脸核身服务完成，我们仅接收核验结果及核验编号，"
             "不获取、不保存您的人脸图像或特征）；同名银行卡核验结果。"),
        Para("1.3　联系与账户信息：手机号码、绑定银行卡号及预留手机号、电子账户账号、交易记录。"),
        Para("1.4　车辆与ETC信息：车辆号牌及颜色、ETC用户卡号、通行及停车等交易信息。"),
        Para("1.5　签约与设备信息：手写签名图像、签署时间、IP地址、设备及浏览器信息、微信openid。"),
        Para("二、处理目的与方式", "heading"),
        Para("2.1　用于核实身份（客户身份识别）、开立和管理账户、签署和保存电子合同、执行ETC自动扣款与"
             "欠费补缴、风险控制与反欺诈、向您发送服务通知，以及履行反洗钱等法定义务与监管报送。"),
        Para("2.2　身份证件号码、银行账户信息、人脸识别结果及车辆行踪信息属于敏感个人信息。我们仅在"
             "开户和扣款所必需的范围内处理，您勾选同意即为单独同意；拒绝提供将无法开户或使用相应服务，"
             "但不影响您浏览小程序的公开信息。"),
        Para("三、信息分级与安全保护", "heading"),
        Para("3.1　我们按JR/T 0171—2020对个人金融信息分级保护：C3类鉴别信息（如密码、验证码、"
             "用于鉴别的生物识别信息）不以明文存储、传输或展示；C2类信息（如身份证件号码、账号、卡号、"
             "手机号码）加密存储，页面、文件及日志中一律去标识化展示（如1101**********123X、"
             "138****5678）；C1类信息（如开户时间、开户机构）按内部使用要求管理。"),
        Para("3.2　我们对个人信息实行最小授权访问和操作审计；上传的证件影像与签名图像加密保存。"),
        Para("四、共享、委托处理与出境", "heading"),
        Para("4.1　为实现上述目的，我们会向以下机构提供必要信息：腾讯（微信登录、手机号、人脸核身及"
             "微信支付）；银行卡发卡机构或清算机构（同名卡要素核验）；ETC发行服务机构、停车场、加油站、"
             "洗车服务商等合作机构（扣款所需的车辆与交易信息）；依法有权要求提供信息的国家机关。"),
        Para("4.2　我们不会出售您的个人信息，您的个人信息存储于中华人民共和国境内，不向境外提供。"),
        Para("五、保存期限", "heading"),
        Para("5.1　依照反洗钱相关规定，客户身份资料自业务关系结束后、交易记录自交易结束后至少保存五年；"
             "电子合同及签约证据自合同终止后至少保存五年。超过保存期限的，我们将删除或匿名化处理。"),
        Para("六、您的权利", "heading"),
        Para("6.1　您有权查阅、复制、更正、补充您的个人信息，有权要求删除、撤回同意、注销账户，"
             "并有权要求我们对处理规则作出解释。我们将在收到请求后十五个工作日内答复。"),
        Para("6.2　撤回同意不影响撤回前基于同意已进行的处理；撤回后我们将无法继续提供依赖该信息的服务。"
             "法律法规要求保存的信息，在保存期限内我们将停止除存储和必要安全保护之外的处理。"),
        Para("6.3　如您对个人信息处理有疑问或投诉，可通过小程序“我的—客服”联系我们的个人信息保护"
             "负责人，也可向金融监管部门或网信部门投诉。"),
        Para("本同意书自您签署之日起生效。我们更新本同意书的，将通知您并重新取得您的同意。", "note"),
    ]


TEMPLATES: dict[str, Template] = {
    t.code: t
    for t in (
        Template(
            code="account_agreement",
            version="2026.11-2",  # -2: the limits are rendered from services/accounts/rules.py
            title="个人银行电子账户服务协议",
            subject_type="account_application",
            body=_account_agreement,
            variants={
                "II": "个人Ⅱ类银行结算账户服务协议",
                "III": "个人Ⅲ类银行结算账户服务协议",
            },
            required=("signer_name", "signer_id_number"),
        ),
        Template(
            code="etc_autodebit",
            version="2026.11-1",
            title="ETC通行费及车辆服务费用自动扣款授权书",
            subject_type="etc_binding",
            body=_etc_autodebit,
            required=(
                "signer_name",
                "signer_id_number",
                "plate_number",
                "etc_card_number",
                "account_number",
            ),
        ),
        Template(
            code="privacy_consent",
            version="2026.11-1",
            title="个人信息处理授权同意书",
            subject_type=None,
            body=_privacy_consent,
        ),
    )
}


# What a contract is rendered with when only its fixed wording matters (font coverage checks).
SAMPLE_CONTEXT: dict[str, Any] = {
    "signer_name": "张三",
    "signer_id_number": "11010519491231002X",
    "signer_phone": "13812345678",
    "account_number": "6230000000000000000",
    "bound_card_number": "6222021234561234",
    "plate_number": "京A12345",
    "plate_color": "blue",
    "etc_card_number": "11011234567890123456",
    "date": dt.date(2026, 1, 1),
}


def fixed_text() -> str:
    """Every character the templates print whatever the context: titles, variants, the wording of each
    template (rendered with ``SAMPLE_CONTEXT``). A contract font must cover all of it."""
    parts: list[str] = []
    for t in TEMPLATES.values():
        parts.append(t.title)
        for variant, title in (t.variants or {None: t.title}).items():
            parts.append(title)
            parts.extend(p.text for p in t.paragraphs(SAMPLE_CONTEXT, variant))
    return "".join(parts)


def get_template(code: str) -> Template:
    try:
        return TEMPLATES[code]
    except KeyError:
        raise TemplateNotFound(field="template") from None

