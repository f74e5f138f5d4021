const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const accounts = require('../../../utils/accounts')
const contracts = require('../../../utils/contracts')
const subscribe = require('../../../utils/subscribe')

const OPEN_STATUSES = ['draft', 'identity_verified', 'signed']

/** 后端的 ApplicationOut → 页面数据。 */
function viewApplication(app) {
  const open = OPEN_STATUSES.indexOf(app.status) >= 0
  return {
    id: app.id,
    accountClass: app.account_class,
    classLabel: accounts.CLASS_LABELS[app.account_class] || app.account_class,
    status: app.status,
    statusText: accounts.APPLICATION_STATUS[app.status] || app.status,
    open,
    closed: !open,
    missing: app.missing || [],
    nextStep: app.next_step,
    expiresAt: contracts.formatTime(app.expires_at),
    accountId: app.account_id || null,
    rejectionCode: app.rejection_code || ''
  }
}

function titlesOf(missing) {
  return missing.map((key) => {
    const step = accounts.STEPS.find((s) => s.key === key)
    return step ? step.title : key
  }).join('、')
}

Page({
  data: {
    classes: accounts.CLASSES,
    accountClass: 'II',
    loading: false,
    application: null,
    steps: accounts.buildSteps(null),
    missingText: '',
    canSubmit: false,
    milestones: [],
    submitting: false,
    error: null
  },

  /**
   * options: {class?: 'II' | 'III'（默认 II）, id?: 申请 id}。有 id 时读取该申请，否则
   * POST /api/v1/account-applications {account_class}（已有未结束的同类申请就返回它）。
   */
  onLoad(options) {
    options = options || {}
    const id = accounts.parseId(options.id)
    const cls = String(options.class || '').toUpperCase()
    if (cls === 'II' || cls === 'III') this.setData({ accountClass: cls })
    if (!api.isLoggedIn()) {
      wx.navigateTo({ url: '/pages/login/login' })
      return Promise.resolve(null)
    }
    return id ? this.refresh(id) : this.start()
  },

  /** 从各步骤的页面回来：重新读取还缺什么（首次显示时 onLoad 的请求还在进行，不重复请求）。 */
  onShow() {
    if (!this.data.application || this.data.loading) return Promise.resolve(null)
    return this.refresh()
  },

  onPullDownRefresh() {
    return this.refresh().then((app) => {
      wx.stopPullDownRefresh()
      return app
    })
  },

  /** 选择账户类别：取得（或新建）该类别的申请。 */
  onChooseClass(e) {
    const value = e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.value : ''
    if ((value !== 'II' && value !== 'III') || this.data.loading || this.data.submitting) return Promise.resolve(null)
    if (value === this.data.accountClass && this.data.application && this.data.application.open) {
      return Promise.resolve(this.data.application)
    }
    this.setData({ accountClass: value })
    return this.start()
  },

  start() {
    this.setData({ loading: true, error: null })
    return api.request({
      url: '/api/v1/account-applications',
      method: 'POST',
      data: { account_class: this.data.accountClass }
    }).then((app) => this.show(app)).catch((err) => {
      this.setData({ loading: false })
      return this.fail(err)
    })
  },

  /** GET /api/v1/account-applications/{id}：状态、里程碑、按顺序还缺什么。 */
  refresh(id) {
    const appId = id || (this.data.application && this.data.application.id)
    if (!appId) return this.start()
    this.setData({ loading: true, error: null })
    return api.request({ url: '/api/v1/account-applications/' + encodeURIComponent(appId) })
      .then((app) => this.show(app))
      .catch((err) => {
        this.setData({ loading: false })
        return this.fail(err)
      })
  },

  show(app) {
    const view = viewApplication(app)
    this.setData({
      loading: false,
      accountClass: view.accountClass,
      application: view,
      steps: accounts.buildSteps(app),
      missingText: view.open ? titlesOf(view.missing) : '',
      canSubmit: view.open && view.missing.length === 0,
      milestones: accounts.milestoneList(app)
    })
    return app
  },

  /** 去完成某一步：手机号 → 登录页，身份证 / 人脸 / 银行卡 → 核验页，协议 → 签署页（subject_id 为申请 id）。 */
  goStep(e) {
    const url = (e && e.currentTarget && e.currentTarget.dataset && e.currentTarget.dataset.url) || ''
    if (!url) return
    wx.navigateTo({ url })
  },

  /** POST /api/v1/account-applications/{id}/submit → 账户页。 */
  onSubmit() {
    const app = this.data.application
    if (!app || this.data.submitting) return Promise.resolve(null)
    if (!this.data.canSubmit) {
      const message = app.open && app.missing.length ? '请先完成：' + titlesOf(app.missing) : '该申请不能提交'
      wx.showToast({ title: message, icon: 'none' })
      this.setData({ error: { code: 'APPLICATION_INCOMPLETE', message, field: null } })
      return Promise.resolve(null)
    }
    this.setData({ submitting: true, error: null })
    // 点击的同步部分里请求订阅（开户成功等通知），用户答复后再提交：通知发出时订阅已在。
    return subscribe.ask('opening').then(() => api.request({
      url: '/api/v1/account-applications/' + encodeURIComponent(app.id) + '/submit',
      method: 'POST'
    })).then((account) => {
      this.setData({ submitting: false, 'application.accountId': account.id })
      wx.showToast({ title: '开户成功', icon: 'success' })
      wx.redirectTo({ url: '/pages/account/account?id=' + account.id })
      return account
    }).catch((err) => {
      this.setData({ submitting: false })
      this.fail(err)
      // 缺了什么、申请是否已被拒绝：以服务端为准重新读取，错误提示保留。
      const error = this.data.error
      if (['APPLICATION_INCOMPLETE', 'APPLICATION_CLOSED', 'ACCOUNT_LIMIT_REACHED'].indexOf(err.code) < 0) return null
      return this.refresh().then(() => {
        this.setData({ error })
        return null
      })
    })
  },

  goAccount() {
    const app = this.data.application
    if (!app || !app.accountId) return
    wx.redirectTo({ url: '/pages/account/account?id=' + app.accountId })
  },

  /** 申请已结束（被拒绝 / 过期）：重新申请同类账户。 */
  onRestart() {
    this.setData({ application: null, steps: accounts.buildSteps(null), milestones: [], missingText: '', canSubmit: false })
    return this.start()
  },

  fail(err) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})
