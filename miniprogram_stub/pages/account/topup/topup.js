const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const money = require('../../../utils/money')
const accounts = require('../../../utils/accounts')

const MODES = {
  topup: { path: '/top-ups', title: '从银行卡充值', action: '充值', done: '充值成功', hint: '从绑定银行卡转入电子账户' },
  withdraw: { path: '/withdrawals', title: '提现到银行卡', action: '提现', done: '提现成功', hint: '从电子账户转出到绑定银行卡' }
}

/**
 * 结果未知、可以用同一个 Idempotency-Key 重试的错误：网络异常 / 超时（status 0）、服务端 5xx
 * （如 CARD_NETWORK_UNAVAILABLE）、同一请求仍在处理（IDEMPOTENCY_KEY_IN_USE）。
 * 其余 4xx 是最终答复（余额不足、卡被拒…）：这次意图结束，再提交就是新的意图、新的 key。
 */
function isRetryable(err) {
  if (!err) return false
  return err.status === 0 || err.status >= 500 || err.code === 'IDEMPOTENCY_KEY_IN_USE'
}

Page({
  data: {
    mode: 'topup',
    title: MODES.topup.title,
    action: MODES.topup.action,
    hint: MODES.topup.hint,
    accountId: null,
    account: null,
    amount: '',
    submitting: false,
    retrying: false,
    result: null,
    error: null
  },

  /** options: {id: 账户 id, mode: 'topup'（默认）| 'withdraw'}。 */
  onLoad(options) {
    options = options || {}
    const mode = options.mode === 'withdraw' ? 'withdraw' : 'topup'
    const conf = MODES[mode]
    const accountId = accounts.parseId(options.id)
    this.intent = null
    this.setData({ mode, title: conf.title, action: conf.action, hint: conf.hint, accountId })
    if (!accountId) return Promise.resolve(this.fail(new api.ApiError({ status: 404, code: 'ACCOUNT_NOT_FOUND' })))
    return this.loadAccount()
  },

  /** GET /api/v1/accounts/{id}：余额、绑定卡、Ⅲ类户还可转入多少。quiet：失败不提示（转账已成功时的刷新）。 */
  loadAccount(quiet) {
    return api.request({ url: '/api/v1/accounts/' + encodeURIComponent(this.data.accountId) }).then((a) => {
      this.setData({ account: accounts.viewAccount(a) })
      return a
    }).catch((err) => (quiet ? null : this.fail(err)))
  },

  onAmountInput(e) {
    // 结果未知的那笔还在等重试时金额不能改（改了就是另一笔，可能重复扣款）。
    if (this.data.retrying) return
    this.setData({ amount: String((e && e.detail && e.detail.value) || '') })
  },

  /**
   * 提交：金额按字符串解析为整数分（utils/money.js），POST /api/v1/accounts/{id}/top-ups | withdrawals
   * {amount_fen}，带 Idempotency-Key。一次用户意图（这个账户、这个方向、这个金额）一个 key：
   * 网络异常、超时、5xx、202 pending（银行卡网络结果未知）之后的重试沿用同一个 key，服务端保证只扣 / 只入账一次；
   * 得到最终答复（201 成功、202 held 转人工审核，或 4xx，如风控拒绝 RISK_BLOCKED）后意图结束，下次提交生成新 key。
   */
  onSubmit() {
    if (this.data.submitting || !this.data.accountId) return Promise.resolve(null)
    const parsed = money.parseYuan(this.data.amount)
    if (!parsed.ok) {
      wx.showToast({ title: parsed.message, icon: 'none' })
      this.setData({ error: { code: parsed.code, message: parsed.message, field: 'amount_fen' } })
      return Promise.resolve(null)
    }
    const mode = this.data.mode
    const accountId = this.data.accountId
    let intent = this.intent
    if (!intent || intent.mode !== mode || intent.accountId !== accountId || intent.amountFen !== parsed.fen) {
      intent = { key: api.uuid4(), mode, accountId, amountFen: parsed.fen }
    }
    this.intent = intent
    this.setData({ submitting: true, error: null, result: null })
    return api.request({
      url: '/api/v1/accounts/' + encodeURIComponent(accountId) + MODES[mode].path,
      method: 'POST',
      data: { amount_fen: intent.amountFen },
      idempotencyKey: intent.key
    }).then((transfer) => {
      // 202 pending：银行卡网络结果未知，保留意图，用同一个 key 查询结果。
      // 202 held：风控转人工审核（资金已冻结或已扣减，尚未发往银行卡）：这是服务端的答复，意图结束，不当作
      // “结果未知”去重试；只显示固定的说明，不显示命中的规则。201 succeeded：完成。
      const pending = transfer.status === 'pending'
      const held = transfer.status === 'held'
      if (!pending) this.intent = null
      const result = {
        pending,
        held,
        title: pending ? '银行处理中' : held ? '等待人工审核' : MODES[mode].done,
        note: held ? errors.TRANSFER_HELD : '',
        amount: money.formatFen(transfer.amount_fen),
        balance: money.formatFen(transfer.balance_fen)
      }
      const update = { submitting: false, retrying: pending, result }
      if (!pending) update.amount = ''
      if (this.data.account) update['account.balance'] = result.balance
      this.setData(update)
      if (pending) wx.showToast({ title: '银行处理中，请稍后查询结果', icon: 'none' })
      else if (held) wx.showToast({ title: '已提交，等待人工审核', icon: 'none', duration: 2500 })
      else wx.showToast({ title: MODES[mode].done, icon: 'success' })
      return pending ? transfer : this.loadAccount(true).then(() => transfer)
    }).catch((err) => {
      const retry = isRetryable(err)
      if (!retry) this.intent = null
      this.setData({ submitting: false, retrying: retry })
      return this.fail(err)
    })
  },

  /** 放弃结果未知的那笔（例如已在交易明细里确认过）：可以改金额，下次提交是新的意图。 */
  onResetIntent() {
    this.intent = null
    this.setData({ retrying: false, result: null, error: null })
  },

  goTransactions() {
    wx.navigateTo({ url: '/pages/account/transactions/transactions?id=' + this.data.accountId })
  },

  goBack() {
    wx.navigateBack({
      fail: () => wx.redirectTo({ url: '/pages/account/account?id=' + this.data.accountId })
    })
  },

  fail(err) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})

module.exports = { isRetryable }
