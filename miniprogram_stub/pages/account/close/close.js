const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const money = require('../../../utils/money')
const accounts = require('../../../utils/accounts')
const face = require('../../../utils/face')
const subscribe = require('../../../utils/subscribe')

// 销户页上的错误说明：比通用文字更具体（欠费：补缴后才能销户，而不是“才能解除绑定”）。
const OVERRIDES = {
  ARREARS_OUTSTANDING: '尚有 ETC 欠费未补缴，补缴后才能销户',
  ACCOUNT_CLOSED: '该账户已销户'
}

/**
 * 结果未知、用同一个 Idempotency-Key（和同一个 verify_id：同一请求）重试的情况：网络异常 / 超时（status 0）、
 * 服务端 5xx、同一请求仍在处理（IDEMPOTENCY_KEY_IN_USE），以及 202（账户 closing：银行卡网络结果未知）。
 * 其余 4xx 是最终答复：这次意图结束，再次销户要重新人脸核验、用新的 key。CARD_NETWORK_UNAVAILABLE（503）也是：
 * 转账没有发出、余额已退回，而这次的人脸核验已用掉，再次销户是新的意图。
 */
function isRetryable(err) {
  if (!err || err.code === 'CARD_NETWORK_UNAVAILABLE') return false
  return err.status === 0 || err.status >= 500 || err.code === 'IDEMPOTENCY_KEY_IN_USE'
}

/** 销户前要先处理的事：未解绑的 ETC 绑定、欠费（本账户的绑定，含已解绑的）、账户限制、在途转账。 */
function blockersOf(account, bindings) {
  const list = []
  const mine = (bindings || []).filter((b) => b.account_id === account.id)
  const bound = mine.filter((b) => b.status !== 'unbound')
  if (bound.length) {
    list.push({ code: 'ACCOUNT_HAS_BINDINGS', text: '还有 ' + bound.length + ' 个 ETC 绑定未解除（' + bound.map((b) => b.plate_number).join('、') + '），请先解除绑定' })
  }
  const owed = mine.reduce((sum, b) => sum + (b.arrears_fen || 0), 0)
  if (owed > 0) list.push({ code: 'ARREARS_OUTSTANDING', text: '尚有欠费 ' + money.formatFen(owed) + ' 未补缴，补缴后才能销户' })
  if (Array.isArray(account.restrictions) && account.restrictions.length) {
    const lost = account.restrictions.some((r) => r.code === 'LOSS_REPORTED')
    list.push({ code: 'ACCOUNT_RESTRICTED', text: lost ? '账户已挂失，请先解除挂失' : accounts.restrictionBanner(account) || '账户受限，暂不能销户' })
  }
  if (account.pending_in_fen > 0) list.push({ code: 'TRANSFER_PENDING', text: '有未完成的转账，请待其完成后再销户' })
  return list
}

Page({
  data: {
    accountId: null,
    account: null,
    blockers: [],
    loaded: false,
    submitting: false,
    retrying: false,
    result: null,
    error: null
  },

  /** options: {id: 账户 id}。 */
  onLoad(options) {
    options = options || {}
    this.intent = null
    const accountId = accounts.parseId(options.id)
    this.setData({ accountId })
    if (!accountId) return Promise.resolve(this.fail(new api.ApiError({ status: 404, code: 'ACCOUNT_NOT_FOUND' })))
    return this.refresh()
  },

  /** GET /api/v1/accounts/{id} 与 GET /api/v1/etc-bindings：列出销户前要先处理的事。 */
  refresh() {
    const id = this.data.accountId
    return Promise.all([
      api.request({ url: '/api/v1/accounts/' + encodeURIComponent(id) }),
      api.request({ url: '/api/v1/etc-bindings' })
    ]).then(([account, body]) => {
      const bindings = (body && Array.isArray(body.bindings)) ? body.bindings : []
      this.setData({ loaded: true, account: accounts.viewAccount(account), blockers: account.status === 'closed' ? [] : blockersOf(account, bindings) })
      if (account.status === 'closed') this.setData({ result: { closed: true, title: '账户已销户', amount: '' } })
      return account
    }).catch((err) => this.fail(err))
  },

  /**
   * 确认销户：点击的同步部分里先请求“销户成功通知”的订阅，再人脸核验（与解除挂失相同的流程），然后
   * POST /api/v1/accounts/{id}/close {verify_id}，带 Idempotency-Key。一次销户意图一个 key 和一个 verify_id：
   * 网络异常、5xx、202（银行处理中）之后的重试沿用两者（同一请求），服务端保证余额只转出一次；
   * 最终答复（200 已销户，或 4xx）后意图结束。
   */
  onSubmit() {
    if (this.data.submitting || !this.data.accountId || this.data.blockers.length) return Promise.resolve(null)
    const intent = this.intent
    // 新的意图：在点击的同步部分请求订阅（重试时已请求过）。
    const asked = intent ? Promise.resolve([]) : subscribe.ask('closing')
    this.setData({ submitting: true, error: null })
    const verified = intent ? Promise.resolve(intent) : asked.then(() => {
      if (!face.isSupported()) throw new api.ApiError({ status: 0, code: 'WECHAT_UPGRADE_REQUIRED', message: errors.MESSAGES.WECHAT_UPGRADE_REQUIRED })
      return face.verifyFace({}).then((outcome) => {
        if (!outcome.result || !outcome.result.passed) {
          throw new api.ApiError({ status: 422, code: 'FACE_NOT_PASSED', message: errors.MESSAGES.FACE_NOT_PASSED })
        }
        return { key: api.uuid4(), verifyId: outcome.verifyId }
      })
    })
    return verified.then((it) => {
      this.intent = it
      return api.request({
        url: '/api/v1/accounts/' + encodeURIComponent(this.data.accountId) + '/close',
        method: 'POST',
        data: { verify_id: it.verifyId },
        idempotencyKey: it.key
      })
    }).then((closing) => {
      const pending = closing.account.status === 'closing'
      if (!pending) this.intent = null
      const payout = closing.payout
      const result = {
        closed: !pending,
        pending,
        title: pending ? '销户处理中：余额正在转入绑定银行卡' : '账户已销户',
        amount: payout ? money.formatFen(payout.amount_fen) : money.formatFen(0)
      }
      this.setData({ submitting: false, retrying: pending, result, account: accounts.viewAccount(closing.account) })
      wx.showToast({ title: pending ? '银行处理中，请稍后查询结果' : '销户成功', icon: pending ? 'none' : 'success' })
      return closing
    }).catch((err) => {
      const retry = isRetryable(err) && !!this.intent
      if (!retry) this.intent = null
      this.setData({ submitting: false, retrying: retry })
      if (!retry && err.code && err.status === 409) this.refresh()
      return this.fail(err)
    })
  },

  goAccount() {
    wx.redirectTo({ url: '/pages/account/account?id=' + this.data.accountId })
  },

  goOpen() {
    wx.navigateTo({ url: '/pages/account/open/open' })
  },

  fail(err) {
    const message = errors.showFriendlyError(err, OVERRIDES)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})

module.exports = { isRetryable, blockersOf }
