const api = require('../../utils/api')
const errors = require('../../utils/errors')
const contracts = require('../../utils/contracts')
const accountsUtil = require('../../utils/accounts')
const etc = require('../../utils/etc')

function pick(obj, path) {
  let cur = obj
  for (const key of path) {
    if (!cur || typeof cur !== 'object') return undefined
    cur = cur[key]
  }
  return cur
}

/**
 * 由 GET /api/v1/me 的结果得出各步骤的完成情况（identity 字段可能缺失，防御性读取）。
 * “签署协议”在身份核验（身份证、人脸、银行卡）都完成后才可进入；完成情况以服务端为准：
 * consent 是 GET /api/v1/contracts?template=privacy_consent&status=signed 的最新一份（没有或查询失败为 null）。
 * 每个步骤都有 key / title / done / locked / url / note（模板绑定了它们）。
 */
function buildSteps(me, consent) {
  const identity = (me && me.identity) || {}
  const identityDone = ['id_card', 'face', 'bank_card'].every((k) => !!pick(identity, [k, 'done']))
  consent = (me && consent) || null
  return [
    { key: 'login', title: '微信登录', done: !!me, locked: false, url: '/pages/login/login', note: '' },
    { key: 'phone', title: '绑定手机号', done: !!(me && me.phone), locked: false, url: '/pages/login/login', note: (me && me.phone) || '' },
    {
      key: 'id_card',
      title: '身份证识别',
      done: !!pick(identity, ['id_card', 'done']),
      locked: false,
      url: '/pages/identity/idcard/idcard',
      note: pick(identity, ['id_card', 'valid_until']) ? '有效期至 ' + pick(identity, ['id_card', 'valid_until']) : ''
    },
    {
      key: 'face',
      title: '人脸核身',
      done: !!pick(identity, ['face', 'done']),
      locked: false,
      url: '/pages/identity/face/face',
      note: ''
    },
    {
      key: 'bank_card',
      title: '本人银行卡验证',
      done: !!pick(identity, ['bank_card', 'done']),
      locked: false,
      url: '/pages/identity/bankcard/bankcard',
      note: pick(identity, ['bank_card', 'card_number']) || ''
    },
    {
      key: 'contract',
      title: '签署协议',
      done: !!consent,
      locked: !identityDone && !consent,
      url: '/pages/contract/contract?template=privacy_consent',
      note: consent ? '协议编号 ' + consent.contract_no : (identityDone ? contracts.titleOf('privacy_consent') : '完成身份核验后签署')
    }
  ]
}

Page({
  data: {
    loggedIn: false,
    loading: false,
    user: null,
    steps: buildSteps(null, null),
    doneCount: 0,
    accounts: [],
    accountsLoaded: false,
    bindings: [],
    bindingsLoaded: false,
    error: null
  },

  onShow() {
    return this.refresh()
  },

  onPullDownRefresh() {
    return this.refresh().then(() => wx.stopPullDownRefresh())
  },

  refresh() {
    if (!api.isLoggedIn()) {
      this.setData({
        loggedIn: false, user: null, steps: buildSteps(null, null), doneCount: 0, accounts: [], accountsLoaded: false,
        bindings: [], bindingsLoaded: false
      })
      return Promise.resolve(null)
    }
    this.setData({ loading: true, error: null })
    // 协议状态查询失败不影响页面其它部分：该步骤显示为未完成。
    const consent = contracts.latestSigned('privacy_consent').catch(() => null)
    // 账户列表同样：查询失败时不显示“我的账户”，只给开户入口。
    const owned = api.request({ url: '/api/v1/accounts' }).then((body) => (body && body.accounts) || [], () => null)
    // ETC 绑定（已解绑的不显示）同样：查询失败时只显示“我的车辆与ETC”入口。
    const bound = api.request({ url: '/api/v1/etc-bindings' }).then((body) => (body && body.bindings) || [], () => null)
    return Promise.all([api.request({ url: '/api/v1/me' }), consent, owned, bound]).then(([me, signed, list, bindings]) => {
      const steps = buildSteps(me, signed)
      this.setData({
        loggedIn: true,
        loading: false,
        user: me,
        steps,
        doneCount: steps.filter((s) => s.done).length,
        accounts: (list || []).slice().sort((a, b) => b.id - a.id).map(accountsUtil.viewAccount),
        accountsLoaded: list !== null,
        bindings: (bindings || []).filter((b) => b.status !== 'unbound').map(etc.viewBinding),
        bindingsLoaded: bindings !== null
      })
      return me
    }).catch((err) => {
      const loggedIn = api.isLoggedIn()
      this.setData({
        loading: false,
        loggedIn,
        user: loggedIn ? this.data.user : null,
        error: { code: err.code, message: errors.describe(err) }
      })
      errors.showFriendlyError(err)
      return null
    })
  },

  goStep(e) {
    const dataset = (e && e.currentTarget && e.currentTarget.dataset) || {}
    const url = dataset.url || ''
    if (!url) return
    if (!this.data.loggedIn && url !== '/pages/login/login') {
      wx.navigateTo({ url: '/pages/login/login' })
      return
    }
    if (dataset.locked) {
      wx.showToast({ title: '请先完成身份核验', icon: 'none' })
      return
    }
    wx.navigateTo({ url })
  },

  goLogin() {
    wx.navigateTo({ url: '/pages/login/login' })
  },

  /** 开立电子账户（未登录先登录）。 */
  goOpenAccount() {
    wx.navigateTo({ url: this.data.loggedIn ? '/pages/account/open/open' : '/pages/login/login' })
  },

  goAccount(e) {
    const id = accountsUtil.parseId(e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.id : null)
    wx.navigateTo({ url: id ? '/pages/account/account?id=' + id : '/pages/account/account' })
  },

  /** 我的车辆与ETC（未登录先登录）。 */
  goVehicles() {
    wx.navigateTo({ url: this.data.loggedIn ? '/pages/etc/vehicles/vehicles' : '/pages/login/login' })
  },

  goBinding(e) {
    const id = accountsUtil.parseId(e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.id : null)
    if (id) wx.navigateTo({ url: '/pages/etc/binding/binding?id=' + id })
  },

  onLogout() {
    return api.logout().then(() => this.refresh(), (err) => {
      errors.showFriendlyError(err)
      return this.refresh()
    })
  }
})

module.exports = { buildSteps }
