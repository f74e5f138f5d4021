/**
 * 微信支付（ETC 欠费补缴、ETC 车载设备费）：订单的文字与视图数据，以及 wx.requestPayment 的 Promise 封装。
 *
 * - 金额以服务端订单为准（POST /api/v1/payments/orders 只发 purpose 与 reference_id，不发金额）；
 * - 订单状态 created / prepaid / paid / closed / failed（OpenAPI 中 OrderOut.status）；prepaid 时带 pay_params；
 * - 已支付的设备费（obu_fee）可以申请退款，refunded_fen 是已申请退款的金额；欠费补缴不退；
 * - requestPayment(params) 总是 resolve {ok, cancelled, errMsg}：用户取消（errMsg 含 cancel）与支付失败分开，
 *   客户端的结果只作参考，是否已支付以后端查询（GET /api/v1/payments/orders/{id}）为准。
 */
const money = require('./money')
const contracts = require('./contracts')

/** 可支付的款项（OrderBody.purpose）：页面标题、说明。 */
const PURPOSES = {
  arrears: {
    title: 'ETC欠费补缴',
    hint: '补缴因账户余额不足或超出限额未能扣款的通行费等，用微信支付，不从电子账户扣款；金额以订单为准。',
    paidNote: '欠费已补缴，正在返回 ETC 绑定。'
  },
  obu_fee: {
    title: 'ETC车载设备费',
    hint: 'ETC 车载设备（OBU）费用，用微信支付；金额以订单为准。',
    paidNote: '设备费已支付，正在返回 ETC 绑定。'
  }
}

const ORDER_STATUS = {
  created: '待支付',
  prepaid: '待支付',
  paid: '已支付',
  closed: '已关闭',
  failed: '支付失败'
}

/**
 * 退款状态（OpenAPI 中 PaymentRefundOut.status）：申请后给用户的提示 {text, icon}。processing 是微信支付还在处理
 * （结果以后由通知或查询确定），退款金额已计入订单的 refunded_fen。
 */
const REFUND_STATUS = {
  processing: { text: '退款申请已提交', icon: 'success' },
  success: { text: '退款成功', icon: 'success' },
  abnormal: { text: '退款异常，请联系客服', icon: 'none' },
  closed: { text: '退款未成功，可重新申请', icon: 'none' }
}

/** 订单状态的颜色（app.wxss 的 class）：已支付 ok，支付失败 bad，已关闭 hint。 */
const ORDER_TONE = { paid: 'ok', failed: 'bad', closed: 'hint' }

/** wx.requestPayment 的五个参数（OpenAPI 中 PayParams）。 */
const PAY_PARAM_KEYS = ['timeStamp', 'nonceStr', 'package', 'signType', 'paySign']

function purposeOf(value) {
  return Object.prototype.hasOwnProperty.call(PURPOSES, value) ? value : 'arrears'
}

/** pay_params 是否齐全（五个非空字符串，signType 为 RSA）。 */
function payParamsOk(p) {
  if (!p || typeof p !== 'object') return false
  if (!PAY_PARAM_KEYS.every((k) => typeof p[k] === 'string' && p[k] !== '')) return false
  return p.signType === 'RSA' && /^prepay_id=\S+$/.test(p.package)
}

/** 可以退款的款项：已支付的设备费（欠费补缴已付给合作方，不退；服务端对其余的答复 409 NOT_REFUNDABLE）。 */
const REFUNDABLE_PURPOSES = ['obu_fee']

function fen(value) {
  return Number.isSafeInteger(value) ? money.formatFen(value) : ''
}

/**
 * 后端的 OrderOut（单个订单）或 OrderSummary（订单列表的一项）→ 页面数据。
 * refunded_fen 是已申请的退款（处理中的也算），不超过 amount_fen；refundable：已支付的设备费还有可退的金额
 * （申请退款不带金额，退的是 refundableFen 这么多）。
 */
function viewOrder(o) {
  if (!o) return null
  const amountFen = Number.isSafeInteger(o.amount_fen) ? o.amount_fen : 0
  const refundedFen = Number.isSafeInteger(o.refunded_fen) && o.refunded_fen > 0 ? o.refunded_fen : 0
  const paid = o.status === 'paid'
  const refundable = REFUNDABLE_PURPOSES.includes(o.purpose) && paid && refundedFen < amountFen
  return {
    id: o.id,
    purpose: o.purpose,
    referenceId: o.reference_id === undefined ? null : o.reference_id,
    title: (PURPOSES[o.purpose] || PURPOSES.arrears).title,
    outTradeNo: o.out_trade_no,
    amountFen: o.amount_fen,
    amount: fen(o.amount_fen),
    status: o.status,
    statusText: ORDER_STATUS[o.status] || o.status,
    payable: (o.status === 'prepaid' || o.status === 'created'),
    paid,
    tone: ORDER_TONE[o.status] || '',
    createdAt: contracts.formatTime(o.created_at),
    expiresAt: contracts.formatTime(o.time_expire),
    paidAt: contracts.formatTime(o.paid_at),
    refundedFen,
    refunded: refundedFen > 0 ? money.formatFen(refundedFen) : '',
    refundable,
    refundableFen: refundable ? amountFen - refundedFen : 0,
    refundableAmount: refundable ? money.formatFen(amountFen - refundedFen) : ''
  }
}

/** 调起微信支付；resolve {ok, cancelled, errMsg}，不会 reject。 */
function requestPayment(params) {
  return new Promise((resolve) => {
    if (typeof wx.requestPayment !== 'function') {
      resolve({ ok: false, cancelled: false, errMsg: 'requestPayment:fail not supported' })
      return
    }
    const args = {}
    PAY_PARAM_KEYS.forEach((k) => { args[k] = params[k] })
    wx.requestPayment(Object.assign(args, {
      success(res) {
        resolve({ ok: true, cancelled: false, errMsg: (res && res.errMsg) || 'requestPayment:ok' })
      },
      fail(err) {
        const errMsg = (err && err.errMsg) || 'requestPayment:fail'
        resolve({ ok: false, cancelled: /cancel/i.test(errMsg), errMsg })
      }
    }))
  })
}

module.exports = { PURPOSES, ORDER_STATUS, REFUND_STATUS, PAY_PARAM_KEYS, REFUNDABLE_PURPOSES, purposeOf, payParamsOk, viewOrder, requestPayment }
