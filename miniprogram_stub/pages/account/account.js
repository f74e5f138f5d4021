const api = require('../../utils/api')
const errors = require('../../utils/errors')
const accounts = require('../../utils/accounts')
const face = require('../../utils/face')
const subscribe = require('../../utils/subscribe')

Page({
  data: {
    loading: false,
    loaded: false,
    account: null,
    accounts: [],
    busy: false,
    error: null
  },

  /**
   * options: {id?}。“开户成功”订阅消息打开的是 pages/account/account（不带参数）：没有 id 时读取
   * GET /api/v1/accounts，显示最新开立的账户（有多个时可切换）。
   */
  onLoad(options) {
    options = options || {}
    this.accountId = accounts.parseId(options.id)
    if (!api.isLoggedIn()) {
      wx.navigateTo({ url: '/pages/login/login' })
      return Promise.resolve(null)
    }
    return this.refresh()
  },

  /** 从充值 / 提现页回来：刷新余额与限额（首次显示时 onLoad 的请求还在进行，不重复请求）。 */
  onShow() {
    if (!this.data.loaded || this.data.loading) return Promise.resolve(null)
    return this.refresh()
  },

  onPullDownRefresh() {
    return this.refresh().then((account) => {
      wx.stopPullDownRefresh()
      return account
    })
  },

  refresh() {
    this.setData({ loading: true, error: null })
    const load = this.accountId
      ? api.request({ url: '/api/v1/accounts/' + encodeURIComponent(this.accountId) }).then((a) => ({ account: a, list: null }))
      : api.request({ url: '/api/v1/accounts' }).then((body) => {
        const list = (body && Array.isArray(body.accounts)) ? body.accounts : []
        // 最新开立的在前（id 越大越新）。
        const sorted = list.slice().sort((a, b) => b.id - a.id)
        return { account: sorted[0] || null, list: sorted }
      })
    return load.then(({ account, list }) => {
      const update = { loading: false, loaded: true, account: accounts.viewAccount(account) }
      if (list) update.accounts = list.map(accounts.viewAccount)
      if (account) this.accountId = account.id
      this.setData(update)
      return account
    }).catch((err) => {
      this.setData({ loading: false })
      return this.fail(err)
    })
  },

  onChooseAccount(e) {
    const id = accounts.parseId(e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.id : null)
    if (!id || id === this.accountId) return Promise.resolve(null)
    this.accountId = id
    return this.refresh()
  },

  goTopUp() {
    if (this.data.account) wx.navigateTo({ url: '/pages/account/topup/topup?id=' + this.data.account.id + '&mode=topup' })
  },

  goWithdraw() {
    if (this.data.account) wx.navigateTo({ url: '/pages/account/topup/topup?id=' + this.data.account.id + '&mode=withdraw' })
  },

  goBankCard() {
    if (this.data.account) wx.navigateTo({ url: '/pages/account/bankcard/bankcard?id=' + this.data.account.id })
  },

  goTransactions() {
    if (this.data.account) wx.navigateTo({ url: '/pages/account/transactions/transactions?id=' + this.data.account.id })
  },

  /**
   * 挂失：POST /api/v1/accounts/{id}/loss-report，立即生效，不需要人脸核验（丢了手机，要快）。
   * 点击的同步部分里请求“账户挂失”通知的订阅（开户时的一次可能已用掉），用户答复后再挂失：通知发出时订阅已在。
   */
  onReportLoss() {
    const account = this.data.account
    if (!account || this.data.busy) return Promise.resolve(null)
    this.setData({ busy: true, error: null })
    return subscribe.ask('lossReport')
      .then(() => api.request({ url: '/api/v1/accounts/' + encodeURIComponent(account.id) + '/loss-report', method: 'POST' }))
      .then((a) => this.shown(a, '已挂失'))
      .catch((err) => {
        this.setData({ busy: false })
        return this.fail(err)
      })
  },

  /**
   * 解除挂失：人脸核验（与签署协议相同的流程）→ DELETE /api/v1/accounts/{id}/loss-report {verify_id}。
   * 核验用过一次即失效；银行的冻结不因此解除（页面仍显示提示）。
   */
  onLiftLoss() {
    const account = this.data.account
    if (!account || this.data.busy) return Promise.resolve(null)
    if (!face.isSupported()) return Promise.resolve(this.fail({ code: 'WECHAT_UPGRADE_REQUIRED' }))
    this.setData({ busy: true, error: null })
    return face.verifyFace({}).then((outcome) => {
      if (!outcome.result || !outcome.result.passed) {
        throw new api.ApiError({ status: 0, code: 'FACE_NOT_PASSED', message: errors.MESSAGES.FACE_NOT_PASSED })
      }
      return api.request({
        url: '/api/v1/accounts/' + encodeURIComponent(account.id) + '/loss-report',
        method: 'DELETE',
        data: { verify_id: outcome.verifyId }
      })
    }).then((a) => this.shown(a, '已解除挂失')).catch((err) => {
      this.setData({ busy: false })
      return this.fail(err)
    })
  },

  shown(a, done) {
    this.setData({ busy: false, account: accounts.viewAccount(a) })
    wx.showToast({ title: done, icon: 'success' })
    return a
  },

  /** 身份证已过期（ID_EXPIRED）：更新身份证 → 人脸核验，通过后限制解除（后端在核验通过时解除）。 */
  goRenewId() {
    const account = this.data.account
    wx.navigateTo({ url: accounts.renewalUrl('idcard', account ? account.id : null) })
  },

  goStatements() {
    if (this.data.account) wx.navigateTo({ url: '/pages/account/statements/statements?id=' + this.data.account.id })
  },

  /** 销户页：列出销户前要处理的事（ETC 绑定、欠费），人脸核验后销户。 */
  goClose() {
    if (this.data.account) wx.navigateTo({ url: '/pages/account/close/close?id=' + this.data.account.id })
  },

  goOpen() {
    wx.navigateTo({ url: '/pages/account/open/open' })
  },

  goHome() {
    wx.reLaunch({ url: '/pages/index/index' })
  },

  fail(err) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})
