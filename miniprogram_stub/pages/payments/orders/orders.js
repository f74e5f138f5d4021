const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const pay = require('../../../utils/pay')

/** 这一页的错误文字（其余见 utils/errors.js）。 */
const TEXTS = {
  CURSOR_INVALID: '支付订单加载失败，请下拉刷新后重试'
}

/**
 * 退款结果未知、可以用同一个 Idempotency-Key 重试的错误：网络异常 / 超时（status 0）、服务端 5xx
 * （WECHATPAY_UNAVAILABLE：微信支付的答复丢了，退款仍在处理，同一个 key 重试时服务端接着问它）、同一请求仍在处理
 * （IDEMPOTENCY_KEY_IN_USE）。其余 4xx（NOT_REFUNDABLE、REFUND_EXCEEDS_PAID、ORDER_NOT_FOUND…）是最终答复。
 */
function isRetryable(err) {
  if (!err) return false
  return err.status === 0 || err.status >= 500 || err.code === 'IDEMPOTENCY_KEY_IN_USE'
}

/** wx.showModal 的确认框 → Promise<boolean>（确认为 true）。 */
function confirm(title, content) {
  return new Promise((resolve) => {
    wx.showModal({
      title,
      content,
      success: (res) => resolve(!!(res && res.confirm)),
      fail: () => resolve(false)
    })
  })
}

Page({
  data: {
    pageSize: 20,
    orders: [],
    nextCursor: null,
    loading: false,
    loaded: false,
    // 正在申请退款的订单 id；结果未知、可以重试（同一个 key）的订单 id。
    refunding: null,
    refundRetryId: null,
    error: null
  },

  onLoad() {
    this.refundIntent = null
    if (!api.isLoggedIn()) {
      wx.navigateTo({ url: '/pages/login/login' })
      return Promise.resolve(null)
    }
    return this.reload()
  },

  /** 回到本页（如从支付页）：重新读取（首次显示时 onLoad 的请求还在进行，不重复请求）。 */
  onShow() {
    if (!this.data.loaded || this.data.loading) return Promise.resolve(null)
    return this.reload()
  },

  onPullDownRefresh() {
    return this.reload().then((orders) => {
      wx.stopPullDownRefresh()
      return orders
    })
  },

  onReachBottom() {
    return this.onLoadMore()
  },

  /** 从第一页重新读取（读到后替换整个列表）；resolve 列表。 */
  reload() {
    return this.loadPage(null).then((fresh) => (fresh ? this.data.orders : null))
  },

  /** “加载更多”：用上一页的 next_cursor 读下一页；没有下一页时什么也不做。 */
  onLoadMore() {
    if (!this.data.nextCursor || this.data.loading) return Promise.resolve(null)
    return this.loadPage(this.data.nextCursor)
  },

  /** GET /api/v1/payments/orders?limit=&cursor=：本人的支付订单，最新的在前；cursor 为空时是第一页。 */
  loadPage(cursor) {
    if (this.data.loading) return Promise.resolve(null)
    const data = { limit: this.data.pageSize }
    if (cursor) data.cursor = cursor
    this.setData({ loading: true, error: null })
    return api.request({ url: '/api/v1/payments/orders', data }).then((body) => {
      const kept = cursor ? this.data.orders : []
      const seen = {}
      kept.forEach((o) => { seen[o.id] = true })
      const list = (body && Array.isArray(body.orders)) ? body.orders : []
      const fresh = list.filter((o) => o && !seen[o.id]).map(pay.viewOrder)
      this.setData({
        loading: false,
        loaded: true,
        orders: kept.concat(fresh),
        nextCursor: (body && body.next_cursor) || null
      })
      return fresh
    }).catch((err) => {
      this.setData({ loading: false })
      return this.fail(err)
    })
  },

  orderOf(e) {
    const id = Number((((e || {}).currentTarget || {}).dataset || {}).id)
    return this.data.orders.find((o) => o.id === id) || null
  },

  /**
   * 点一个待支付的订单：打开支付页（binding_id = 订单的 reference_id，purpose 同订单）；那里下单时服务端答复的
   * 仍是这张可支付的订单（200），不会重复收款。其余订单点了没有反应。
   */
  onOpen(e) {
    const order = this.orderOf(e)
    if (!order || !order.payable || !order.referenceId) return
    wx.navigateTo({ url: '/pages/etc/pay/pay?binding_id=' + order.referenceId + '&purpose=' + order.purpose })
  },

  /**
   * 申请退款（只有已支付、还有可退金额的设备费有这个按钮）：确认后
   * POST /api/v1/payments/orders/{id}/refunds {}（不带金额：退还剩余的全部）带 Idempotency-Key，然后提示并重新读取列表。
   * 一次用户意图一个 key（与充值页、支付页一样）：结果未知（网络异常、5xx、IDEMPOTENCY_KEY_IN_USE）时“重试退款”
   * 沿用它（不再确认），服务端不会退两次；得到答复后意图结束。
   */
  onRefund(e) {
    const order = this.orderOf(e)
    if (!order || this.data.refunding) return Promise.resolve(null)
    if (!order.refundable) {
      return Promise.resolve(this.fail(new api.ApiError({ status: 409, code: 'NOT_REFUNDABLE', message: errors.MESSAGES.NOT_REFUNDABLE })))
    }
    const retry = !!(this.refundIntent && this.refundIntent.orderId === order.id)
    const ask = retry ? Promise.resolve(true)
      : confirm('申请退款', '退还' + order.title + ' ' + order.refundableAmount + '，原路退回微信支付。')
    return ask.then((ok) => (ok ? this.refund(order) : null))
  },

  refund(order) {
    let intent = this.refundIntent
    if (!intent || intent.orderId !== order.id) intent = { orderId: order.id, key: api.uuid4() }
    this.refundIntent = intent
    this.setData({ refunding: order.id, error: null })
    return api.request({
      url: '/api/v1/payments/orders/' + encodeURIComponent(order.id) + '/refunds',
      method: 'POST',
      data: {},
      idempotencyKey: intent.key
    }).then((refund) => {
      this.refundIntent = null
      this.setData({ refunding: null, refundRetryId: null })
      const shown = pay.REFUND_STATUS[refund && refund.status] || pay.REFUND_STATUS.processing
      wx.showToast({ title: shown.text, icon: shown.icon })
      return this.reload().then(() => refund)
    }, (err) => {
      const retry = isRetryable(err)
      if (!retry) this.refundIntent = null
      this.setData({ refunding: null, refundRetryId: retry ? order.id : null })
      if (retry) return this.fail(err)
      // 最终答复（不能退、已无可退金额…）：列表已过时，重新读取后再说明。
      return this.reload().then(() => this.fail(err))
    })
  },

  fail(err) {
    const message = errors.showFriendlyError(err, TEXTS)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})

module.exports = { isRetryable }
