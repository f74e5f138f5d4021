/**
 * 把后端错误码翻译成给用户看的中文提示；没有收录的错误码显示服务端返回的 message。
 *
 * SERVER_TEXT 里的错误码，服务端的 message 比固定文字更具体（CARD_DECLINED 说明拒绝原因：
 * 绑定银行卡余额不足 / 状态异常…；APPLICATION_INCOMPLETE 列出尚未完成的步骤；ARREARS_OUTSTANDING 给出欠费金额；
 * 风控的 RISK_BLOCKED / RISK_REVIEW 是服务端给用户看的说明，从不含规则名），
 * 优先显示服务端的，服务端没给时才用这里的文字。
 *
 * TRANSFER_HELD 不是错误码：充值 / 提现被风控转人工审核时（202 status "held"）页面显示的说明。
 */
const MESSAGES = {
  WECHAT_CODE_INVALID: '微信授权已失效，请重试',
  WECHAT_LOGIN_FAILED: '微信登录失败，请重试',
  UNAUTHORIZED: '登录已过期，请重新登录',
  NETWORK_ERROR: '网络异常，请稍后再试',
  WECHAT_UPGRADE_REQUIRED: '当前微信版本过低，不支持人脸核验，请升级微信到最新版本后重试',
  ID_MISMATCH: '身份证信息与输入不一致',
  IDENTITY_FIXED: '您已开户或签署协议，只能更新本人的身份证，不能更换为他人的身份证',
  IDENTITY_NAME_CHANGED: '新身份证的姓名与开户时登记的不一致；如已更名，请到营业网点办理',
  ID_EXPIRED: '身份证已过期',
  UNDER_AGE: '未达到开户年龄要求，暂不能在线办理',
  OCR_UNREADABLE: '身份证照片无法识别，请在光线充足处重新拍摄',
  ID_NUMBER_INVALID: '身份证号码格式不正确',
  TOO_MANY_ATTEMPTS: '尝试次数过多，请稍后再试',
  RATE_LIMITED: '操作过于频繁，请稍后再试',
  // 503：结果未知（可能已办理成功），重试时沿用同一个 Idempotency-Key，不会重复办理
  DB_UNAVAILABLE: '服务暂时不可用，处理结果未知，请稍后重试',
  CONFLICT_RETRY: '业务繁忙，处理结果未知，请稍后重试',
  CARD_NUMBER_INVALID: '银行卡号不正确，请核对',
  CARD_MISMATCH: '银行卡信息与本人身份信息不一致',
  CARD_CLASS_NOT_ALLOWED: '请使用本人名下的一类借记卡或信用卡',
  ID_CARD_REQUIRED: '请先完成身份证核验',
  FACE_NOT_PASSED: '人脸核验未通过，请确认是本人操作后重试',
  CONSENT_REQUIRED: '请先阅读并同意协议',
  FACE_VERIFICATION_PENDING: '人脸核验结果尚未确认，请完成人脸核验后重试',
  FACE_VERIFICATION_STALE: '请重新进行人脸核验',
  FACE_VERIFICATION_INVALID: '请重新进行人脸核验',
  FACE_VERIFICATION_USED: '请重新进行人脸核验',
  CONTRACT_EXPIRED: '协议已过期，请重新发起',
  CONTRACT_NOT_FOUND: '协议不存在，请重新发起',
  CONTRACT_NOT_SIGNED: '协议尚未签署',
  CONTRACT_TEMPLATE_NOT_FOUND: '协议类型不存在',
  SUBJECT_NOT_FOUND: '协议所涉业务不存在，请返回重试',
  SIGNATURE_IMAGE_INVALID: '请重新手写签名',
  SIGNATURE_REQUIRED: '请先手写签名',
  SUBJECT_CLOSED: '该开户申请已结束，请重新申请',
  // 开户
  APPLICATION_NOT_FOUND: '开户申请不存在，请重新申请',
  APPLICATION_CLOSED: '该开户申请已结束，请重新申请',
  ACCOUNT_LIMIT_REACHED: '您在本行开立的该类账户已达上限，暂不能再开立',
  // 账户与资金
  ACCOUNT_NOT_FOUND: '账户不存在',
  ACCOUNT_NOT_ACTIVE: '账户当前不可交易，请联系客服',
  ACCOUNT_RESTRICTED: '账户已挂失、被冻结或身份证已过期，暂不能转出资金',
  ACCOUNT_CLOSED: '该账户已销户或正在销户',
  // 销户
  ACCOUNT_HAS_BINDINGS: '账户仍绑定 ETC 代扣，请先解除绑定再销户',
  LOSS_REPORT_NOT_IN_FORCE: '该账户未挂失，无需解除',
  // 更换绑定银行卡
  CARD_ALREADY_BOUND: '该银行卡已是本账户的绑定银行卡，请填写另一张卡',
  TRANSFER_PENDING: '账户有处理中的充值或提现，请待其完成后再试',
  CARD_NOT_FOUND: '未查询到该银行卡，请核对卡号',
  PHONE_INVALID: '预留手机号格式不正确',
  UPSTREAM_UNAVAILABLE: '服务暂时不可用，请稍后再试',
  INSUFFICIENT_FUNDS: '账户余额不足',
  LIMIT_EXCEEDED: '超出账户交易限额，请明日再试或调整金额',
  BALANCE_CAP_EXCEEDED: '超出账户余额上限，请调整金额',
  CARD_NETWORK_UNAVAILABLE: '银行卡网络暂不可用，请稍后重试',
  CURSOR_INVALID: '交易明细加载失败，请刷新后重试',
  // 对账单
  STATEMENT_MONTH_INVALID: '请选择正确的月份',
  STATEMENT_MONTH_IN_FUTURE: '该月份尚未开始，暂无对账单',
  STATEMENT_BEFORE_OPENING: '账户开立之前的月份没有对账单',
  TSA_UNAVAILABLE: '可信时间戳服务暂时不可用，请稍后再试',
  IDEMPOTENCY_KEY_IN_USE: '上一笔请求正在处理中，请稍后再试',
  IDEMPOTENCY_KEY_REUSED: '请求已变更，请重新提交',
  IDEMPOTENCY_KEY_REQUIRED: '请求不完整，请重新提交',
  IDEMPOTENCY_KEY_INVALID: '请求不完整，请重新提交',
  DEVICE_ID_INVALID: '设备标识异常，请重启小程序后重试',
  // 车辆与 ETC
  PLATE_INVALID: '车牌号码格式不正确，请核对',
  PLATE_COLOR_MISMATCH: '车牌颜色与车牌号码不符（新能源车牌为渐变绿或黄绿双拼）',
  VEHICLE_NOT_FOUND: '车辆不存在，请刷新后重试',
  VEHICLE_LIMIT_REACHED: '登记的车辆已达上限，请先删除不再使用的车辆',
  VEHICLE_BOUND: '该车辆已绑定 ETC 卡，请先解除绑定再删除',
  ETC_CARD_INVALID: 'ETC 卡号应为 20 位数字，请核对',
  ALREADY_BOUND: '该 ETC 卡或车辆已绑定自动扣款，不能重复绑定',
  ACCOUNT_NOT_ELIGIBLE: 'ETC 自动扣款只能绑定状态正常的Ⅱ类户',
  AUTHORISATION_NOT_SIGNED: '请先签署 ETC 自动扣款授权书',
  BINDING_NOT_FOUND: 'ETC 绑定不存在，请刷新后重试',
  BINDING_CLOSED: '该 ETC 绑定已解除',
  BINDING_NOT_ACTIVE: '该 ETC 绑定尚未开通或已暂停',
  // 微信支付（欠费补缴、设备费）
  NOTHING_TO_PAY: '没有需要支付的款项，欠费可能已补缴',
  WECHATPAY_UNAVAILABLE: '微信支付暂不可用，请稍后重试',
  WECHATPAY_REFUSED: '微信支付暂未受理该订单，请稍后重试',
  ORDER_NOT_FOUND: '支付订单不存在，请返回重新发起',
  PAYMENT_NOT_PAYABLE: '该订单已不能支付，请重新发起支付',
  NOT_REFUNDABLE: '该订单不能退款（只退已支付的设备费）',
  REFUND_EXCEEDS_PAID: '退款金额超过可退金额',
  WECHATPAY_REFUND_REFUSED: '微信支付暂未受理该退款，请稍后重试',
  // 本地校验（utils/money.js）
  AMOUNT_REQUIRED: '请输入金额',
  AMOUNT_INVALID: '请输入正确的金额',
  AMOUNT_TOO_PRECISE: '金额最多保留两位小数',
  AMOUNT_NOT_POSITIVE: '金额须大于 0',
  AMOUNT_TOO_LARGE: '金额超出单笔上限',
  // 本地校验（utils/etc.js）
  PLATE_REQUIRED: '请输入车牌号码',
  VEHICLE_REQUIRED: '请选择车辆',
  ACCOUNT_REQUIRED: '请选择扣款账户'
}

const SERVER_TEXT = {
  CARD_DECLINED: '绑定银行卡交易被拒绝',
  APPLICATION_INCOMPLETE: '开户资料尚未完成',
  ARREARS_OUTSTANDING: '尚有欠费未补缴，补缴后才能解除绑定',
  // 风控（服务端的说明优先；不显示、也不需要知道命中了哪条规则）
  RISK_BLOCKED: '交易存在风险，已被拒绝',
  RISK_REVIEW: '交易需人工审核，暂未处理'
}

// 充值 / 提现被风控暂挂、等待人工审核（202 status "held"）：资金已冻结或已扣减，尚未发往银行卡。
const TRANSFER_HELD = '该笔交易需要人工审核，审核通过后自动到账，结果将通知您'

function describe(err, overrides) {
  if (!err) return MESSAGES.NETWORK_ERROR
  const code = err.code
  if (overrides && code && overrides[code]) return overrides[code]
  if (code && MESSAGES[code]) return MESSAGES[code]
  if (code && SERVER_TEXT[code]) {
    // ApiError 在服务端没给 message 时用的是“网络异常”，那不是这个错误的说明。
    return err.message && err.message !== MESSAGES.NETWORK_ERROR ? err.message : SERVER_TEXT[code]
  }
  return err.message || MESSAGES.NETWORK_ERROR
}

/** 用 toast 展示友好的错误提示，并返回展示的文字。 */
function showFriendlyError(err, overrides) {
  const title = describe(err, overrides)
  wx.showToast({ title, icon: 'none', duration: 2500 })
  return title
}

module.exports = { MESSAGES, SERVER_TEXT, TRANSFER_HELD, describe, showFriendlyError }
