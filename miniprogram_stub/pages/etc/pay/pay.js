const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const accountsUtil = require('../../../utils/accounts')
const etc = require('../../../utils/etc')
const pay = require('../../../utils/pay')

/**
 * 下单结果未知、可以用同一个 Idempotency-Key 重试的错误：网络异常 / 超时（status 0）、服务端 5xx
 * （WECHATPAY_UNAVAILABLE、WECHATPAY_REFUSED…：服务端按同一个 key 继续上次开始的下单）、同一请求仍在处理
 * （IDEMPOTENCY_KEY_IN_USE）。其余 4xx（NOTHING_TO_PAY、BINDING_NOT_FOUND…）是最终答复。
 */
function isRetryable(err) {
  if (!err) return false
  return err.status === 0 || err.status >= 500 || err.code === 'IDEMPOTENCY_KEY_IN_USE'
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** 各阶段给用户看的结果 {title, tone, note}；idle / ordering / paying / checking 不显示结果（支付成功见 finishPaid）。 */
const OUTCOMES = {
  cancelled: { title: '已取消支付', tone: 'hint', note: '未扣款，订单仍可支付，可重新支付。' },
  failed: { title: '支付未成功', tone: 'bad', note: '未扣款，可重新支付。' },
  processing: { title: '支付处理中', tone: 'hint', note: '微信支付尚未确认结果，请稍后刷新查看，请勿重复支付。' }
}

Page({
  data: {
    purpose: 'arrears',
    title: pay.PURPOSES.arrears.title,
    hint: pay.PURPOSES.arrears.hint,
    bindingId: null,
    binding: null,
    loading: false,
    nothingToPay: false,
    order: null,
    phase: 'idle',
    busy: false,
    retrying: false,
    outcome: null,
    error: null,
    // 支付后查询订单：最多几次、间隔多久（毫秒）；支付成功后多久返回绑定页。
    pollTimes: 5,
    pollIntervalMs: 600,
    backDelayMs: 1500
  },

  /** options: {binding_id: ETC 绑定 id, purpose: 'arrears'（默认）| 'obu_fee'}。 */
  onLoad(options) {
    options = options || {}
    const purpose = pay.purposeOf(options.purpose)
    const conf = pay.PURPOSES[purpose]
    const bindingId = accountsUtil.parseId(options.binding_id)
    this.intent = null
    this.backTimer = null
    this.setData({ purpose, title: conf.title, hint: conf.hint, bindingId })
    if (!bindingId) return Promise.resolve(this.fail(new api.ApiError({ status: 404, code: 'BINDING_NOT_FOUND' })))
    if (!api.isLoggedIn()) {
      wx.navigateTo({ url: '/pages/login/login' })
      return Promise.resolve(null)
    }
    return this.loadBinding()
  },

  /** 从微信收银台回来：结果还没确认时再查一次。 */
  onShow() {
    if (this.data.phase === 'processing' && !this.data.busy) return this.onRefresh()
    return Promise.resolve(null)
  },

  onUnload() {
    this.cancelBack()
  },

  /** 付的是什么：GET /api/v1/etc-bindings/{id}（车牌、卡号、欠费）。quiet：失败不提示（已支付后的刷新）。 */
  loadBinding(quiet) {
    this.setData({ loading: true })
    return api.request({ url: '/api/v1/etc-bindings/' + encodeURIComponent(this.data.bindingId) }).then((b) => {
      const binding = etc.viewBinding(b)
      const nothingToPay = this.data.purpose === 'arrears' && !binding.hasArrears && !(this.data.order && this.data.order.paid)
      this.setData({ loading: false, binding, nothingToPay })
      return b
    }).catch((err) => {
      this.setData({ loading: false })
      return quiet ? null : this.fail(err)
    })
  },

  /**
   * 支付：POST /api/v1/payments/orders {purpose, reference_id}（带 Idempotency-Key，金额由服务端定）→ 订单的
   * pay_params 调起 wx.requestPayment → 查询订单直到 paid。一次用户意图一个 key：结果未知（网络异常、5xx、
   * IDEMPOTENCY_KEY_IN_USE）时重试沿用它；得到答复后意图结束，再点是新的 key——同一笔欠费还有可支付的订单时
   * 服务端答复的仍是那一张（200），不会重复收款。
   */
  onPay() {
    if (this.data.busy || !this.data.bindingId || this.data.phase === 'paid') return Promise.resolve(null)
    if (this.data.phase === 'processing') return this.onRefresh()
    const purpose = this.data.purpose
    const bindingId = this.data.bindingId
    let intent = this.intent
    if (!intent || intent.purpose !== purpose || intent.bindingId !== bindingId) intent = { key: api.uuid4(), purpose, bindingId }
    this.intent = intent
    this.setData({ busy: true, phase: 'ordering', error: null, outcome: null })
    return api.request({
      url: '/api/v1/payments/orders',
      method: 'POST',
      data: { purpose, reference_id: bindingId },
      idempotencyKey: intent.key
    }).then((order) => {
      this.intent = null
      this.setData({ retrying: false, order: pay.viewOrder(order) })
      if (order.status === 'paid') return this.finishPaid(order)
      if (order.status !== 'prepaid' || !pay.payParamsOk(order.pay_params)) {
        this.setData({ busy: false, phase: 'failed', outcome: OUTCOMES.failed })
        return this.fail(new api.ApiError({ status: 0, code: 'PAYMENT_NOT_PAYABLE', message: errors.MESSAGES.PAYMENT_NOT_PAYABLE }))
      }
      this.setData({ phase: 'paying' })
      return pay.requestPayment(order.pay_params).then((res) => this.afterPayment(order, res))
    }).catch((err) => {
      const retry = isRetryable(err)
      if (!retry) this.intent = null
      this.setData({ busy: false, retrying: retry, phase: 'idle' })
      if (err && err.code === 'NOTHING_TO_PAY') this.loadBinding()
      return this.fail(err)
    })
  },

  /** wx.requestPayment 之后：取消 → 已取消支付（不查询，订单仍可支付）；其余以后端为准，查询订单。 */
  afterPayment(order, res) {
    if (res.cancelled) {
      this.setData({ busy: false, phase: 'cancelled', outcome: OUTCOMES.cancelled })
      wx.showToast({ title: '已取消支付', icon: 'none' })
      return null
    }
    this.setData({ phase: 'checking' })
    // 客户端报失败时也可能已扣款（网络中断等）：查一次即可；报成功则多查几次等微信支付确认。
    return this.poll(order.id, res.ok ? this.data.pollTimes : 1)
  },

  /** GET /api/v1/payments/orders/{id}（服务端向微信支付查询）：paid 为止，最多 times 次。 */
  poll(orderId, times) {
    let tries = 0
    const once = () => {
      tries++
      return api.request({ url: '/api/v1/payments/orders/' + encodeURIComponent(orderId) }).then((order) => {
        this.setData({ order: pay.viewOrder(order) })
        if (order.status === 'paid') return this.finishPaid(order)
        if (order.status === 'failed' || order.status === 'closed') {
          this.setData({ busy: false, phase: 'failed', outcome: OUTCOMES.failed })
          wx.showToast({ title: '支付未成功', icon: 'none' })
          return null
        }
        if (tries < times) return sleep(this.data.pollIntervalMs).then(once)
        return this.processing()
      }, () => (tries < times ? sleep(this.data.pollIntervalMs).then(once) : this.processing()))
    }
    return once()
  },

  processing() {
    this.setData({ busy: false, phase: 'processing', outcome: OUTCOMES.processing })
    wx.showToast({ title: '支付处理中', icon: 'none' })
    return null
  },

  /** 支付处理中：刷新支付结果（再查一次订单）。 */
  onRefresh() {
    const order = this.data.order
    if (!order || this.data.busy) return Promise.resolve(null)
    this.setData({ busy: true, phase: 'checking', error: null })
    return this.poll(order.id, 1)
  },

  /** 已支付：支付成功，刷新欠费，稍后返回绑定页；resolve 订单。 */
  finishPaid(order) {
    const outcome = { title: '支付成功', tone: 'ok', note: pay.PURPOSES[this.data.purpose].paidNote }
    this.setData({ busy: false, phase: 'paid', outcome, order: pay.viewOrder(order), nothingToPay: false })
    wx.showToast({ title: '支付成功', icon: 'success' })
    return this.loadBinding(true).then(() => this.scheduleBack()).then(() => order)
  },

  scheduleBack() {
    this.cancelBack()
    return new Promise((resolve) => {
      this.backDone = resolve
      this.backTimer = setTimeout(() => {
        this.backTimer = null
        this.goBack()
      }, this.data.backDelayMs)
    })
  },

  cancelBack() {
    if (this.backTimer) clearTimeout(this.backTimer)
    this.backTimer = null
    const done = this.backDone
    this.backDone = null
    if (done) done()
  },

  /** 返回 ETC 绑定页（没有上一页时打开它）。 */
  goBack() {
    this.cancelBack()
    wx.navigateBack({
      fail: () => wx.redirectTo({ url: '/pages/etc/binding/binding?id=' + this.data.bindingId })
    })
  },

  fail(err) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})

module.exports = { isRetryable }
