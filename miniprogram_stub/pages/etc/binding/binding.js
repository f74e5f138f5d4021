const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const accountsUtil = require('../../../utils/accounts')
const etc = require('../../../utils/etc')

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

const ACTIONS = {
  suspend: { path: '/suspend', method: 'POST', done: '已暂停自动扣款' },
  resume: { path: '/resume', method: 'POST', done: '已恢复自动扣款' },
  unbind: { path: '', method: 'DELETE', done: '已解除绑定' }
}

Page({
  data: {
    bindingId: null,
    binding: null,
    account: null,
    accountText: '',
    loading: false,
    loaded: false,
    acting: '',
    pageSize: 20,
    debits: [],
    nextCursor: null,
    debitsLoading: false,
    debitsLoaded: false,
    error: null
  },

  /** options: {id: 绑定 id}。 */
  onLoad(options) {
    const bindingId = accountsUtil.parseId((options || {}).id)
    this.setData({ bindingId })
    if (!bindingId) return Promise.resolve(this.fail(new api.ApiError({ status: 404, code: 'BINDING_NOT_FOUND' })))
    if (!api.isLoggedIn()) {
      wx.navigateTo({ url: '/pages/login/login' })
      return Promise.resolve(null)
    }
    return this.refresh()
  },

  /** 回到本页：刷新（首次显示时 onLoad 的请求还在进行，不重复请求）。 */
  onShow() {
    if (!this.data.loaded || this.data.loading) return Promise.resolve(null)
    return this.refresh()
  },

  onPullDownRefresh() {
    return this.refresh().then((binding) => {
      wx.stopPullDownRefresh()
      return binding
    })
  },

  onReachBottom() {
    return this.onLoadMore()
  },

  /** 绑定（GET /api/v1/etc-bindings/{id}）、扣款账户，以及扣款记录的第一页。 */
  refresh() {
    this.setData({ loading: true, error: null })
    return api.request({ url: '/api/v1/etc-bindings/' + encodeURIComponent(this.data.bindingId) }).then((binding) => {
      this.showBinding(binding)
      this.setData({ loading: false, loaded: true })
      return Promise.all([this.loadAccount(binding.account_id), this.reloadDebits()]).then(() => binding)
    }).catch((err) => {
      this.setData({ loading: false })
      return this.fail(err)
    })
  },

  showBinding(binding) {
    this.setData({ binding: etc.viewBinding(binding) })
  },

  /** 扣款账户（GET /api/v1/accounts/{id}）：类别、卡号、余额；失败时只是不显示。 */
  loadAccount(accountId) {
    return api.request({ url: '/api/v1/accounts/' + encodeURIComponent(accountId) }).then((a) => {
      const account = accountsUtil.viewAccount(a)
      this.setData({ account, accountText: account.classLabel + ' ' + account.number })
      return a
    }, () => null)
  },

  reloadDebits() {
    this.setData({ debits: [], nextCursor: null, debitsLoaded: false })
    return this.loadDebits(null)
  },

  /** “加载更多”：用上一页的 next_cursor 读下一页；没有下一页时什么也不做。 */
  onLoadMore() {
    if (!this.data.nextCursor || this.data.debitsLoading) return Promise.resolve(null)
    return this.loadDebits(this.data.nextCursor)
  },

  /** GET /api/v1/etc-bindings/{id}/debits?limit=&cursor=：合作方的扣款，最新的在前。 */
  loadDebits(cursor) {
    if (this.data.debitsLoading) return Promise.resolve(null)
    const data = { limit: this.data.pageSize }
    if (cursor) data.cursor = cursor
    this.setData({ debitsLoading: true })
    return api.request({
      url: '/api/v1/etc-bindings/' + encodeURIComponent(this.data.bindingId) + '/debits',
      data
    }).then((body) => {
      const seen = {}
      this.data.debits.forEach((d) => { seen[d.key] = true })
      const fresh = ((body && body.debits) || []).filter((d) => !seen[d.out_trade_no]).map(etc.viewDebit)
      this.setData({
        debitsLoading: false,
        debitsLoaded: true,
        debits: this.data.debits.concat(fresh),
        nextCursor: (body && body.next_cursor) || null
      })
      return fresh
    }).catch((err) => {
      this.setData({ debitsLoading: false })
      return this.fail(err)
    })
  },

  onSuspend() {
    return this.act('suspend')
  },

  onResume() {
    return this.act('resume')
  },

  /** 解除绑定：确认后 DELETE；尚有欠费时服务端拒绝（ARREARS_OUTSTANDING，说明欠费金额），照原样显示。 */
  onUnbind() {
    const binding = this.data.binding
    if (!binding || binding.unbound || this.data.acting) return Promise.resolve(null)
    return confirm('解除绑定', '解除后 ' + binding.plate + ' 的 ETC 通行费将不再从该账户自动扣款。').then((ok) => (ok ? this.act('unbind') : null))
  },

  /** 暂停 / 恢复 / 解除：POST …/suspend、POST …/resume、DELETE /api/v1/etc-bindings/{id}。 */
  act(kind) {
    const conf = ACTIONS[kind]
    const binding = this.data.binding
    if (!conf || !binding || this.data.acting) return Promise.resolve(null)
    this.setData({ acting: kind, error: null })
    return api.request({
      url: '/api/v1/etc-bindings/' + encodeURIComponent(binding.id) + conf.path,
      method: conf.method
    }).then((b) => {
      this.setData({ acting: '' })
      this.showBinding(b)
      wx.showToast({ title: conf.done, icon: 'success' })
      return b
    }).catch((err) => {
      this.setData({ acting: '' })
      return this.fail(err)
    })
  },

  goAccount() {
    if (this.data.binding) wx.navigateTo({ url: '/pages/account/account?id=' + this.data.binding.accountId })
  },

  /** 补缴欠费：支付页（微信支付，金额以服务端订单为准）；回到本页时 onShow 刷新欠费与扣款记录。 */
  goPay() {
    const binding = this.data.binding
    if (binding && binding.hasArrears) wx.navigateTo({ url: '/pages/etc/pay/pay?binding_id=' + binding.id + '&purpose=arrears' })
  },

  /** 待开通的绑定：回到绑定页签署授权书、开通。 */
  goActivate() {
    if (this.data.binding) wx.navigateTo({ url: '/pages/etc/bind/bind?id=' + this.data.binding.id })
  },

  goVehicles() {
    wx.navigateTo({ url: '/pages/etc/vehicles/vehicles' })
  },

  /** 支付订单：微信支付的欠费补缴、设备费（已支付的设备费可申请退款）。 */
  goOrders() {
    wx.navigateTo({ url: '/pages/payments/orders/orders' })
  },

  fail(err) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})
