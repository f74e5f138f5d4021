/**
 * 微信支付（ETC 欠费补缴、ETC 车载设备费）：订单的文字与视图数据，以及 wx.requestPayment 的 Promise 封装。
 *
 * - 金额以服务端订单为准（POST /api/v1/payments/orders 只发 purpose 与 reference_id，不发金额）；
 * - 订单状态 created / prepaid / paid / closed / failed（OpenAPI 中 OrderOut.status）；prepaid 时带 pay_params；
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

/** 后端的 OrderOut → 页面数据。 */
function viewOrder(o) {
  if (!o) return null
  return {
    id: o.id,
    purpose: o.purpose,
    title: (PURPOSES[o.purpose] || PURPOSES.arrears).title,
    outTradeNo: o.out_trade_no,
    amountFen: o.amount_fen,
    amount: Number.isSafeInteger(o.amount_fen) ? money.formatFen(o.amount_fen) : '',
    status: o.status,
    statusText: ORDER_STATUS[o.status] || o.status,
    payable: (o.status === 'prepaid' || o.status === 'created'),
    paid: o.status === 'paid',
    createdAt: contracts.formatTime(o.created_at),
    expiresAt: contracts.formatTime(o.time_expire),
    paidAt: contracts.formatTime(o.paid_at)
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

module.exports = { PURPOSES, ORDER_STATUS, PAY_PARAM_KEYS, purposeOf, payParamsOk, viewOrder, requestPayment }
