const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const accountsUtil = require('../../../utils/accounts')
const contracts = require('../../../utils/contracts')
const etc = require('../../../utils/etc')
const subscribe = require('../../../utils/subscribe')

const AUTHORISATION = 'etc_autodebit'

function localError(code) {
  return new api.ApiError({ status: 0, code, message: errors.MESSAGES[code] })
}

/** 可以绑定 ETC 自动扣款的账户：状态正常的Ⅱ类户。 */
function viewChoiceAccount(a) {
  const view = accountsUtil.viewAccount(a)
  view.eligible = a.account_class === 'II' && a.status === 'active'
  return view
}

function accountText(account) {
  return account ? account.classLabel + ' ' + account.number : ''
}

Page({
  data: {
    loading: false,
    loaded: false,
    vehicles: [],
    vehicleId: null,
    accounts: [],
    accountId: null,
    eligibleCount: 0,
    cardNumber: '',
    cardDigits: 0,
    cardLength: etc.CARD_LENGTH,
    submitting: false,
    binding: null,
    bindingAccount: '',
    authTitle: contracts.titleOf(AUTHORISATION),
    authorised: false,
    activating: false,
    error: null
  },

  /**
   * options: {vehicle_id?: 预先选中的车辆, id?: 已创建的绑定（继续签署授权书、开通）}。
   * 没有 id 时是绑定表单：选择车辆、Ⅱ类户，填写 20 位 ETC 卡号。
   */
  onLoad(options) {
    options = options || {}
    this.preferredVehicle = accountsUtil.parseId(options.vehicle_id)
    const bindingId = accountsUtil.parseId(options.id)
    if (!api.isLoggedIn()) {
      wx.navigateTo({ url: '/pages/login/login' })
      return Promise.resolve(null)
    }
    return Promise.all([this.loadChoices(), bindingId ? this.loadBinding(bindingId) : null]).then((results) => results[1] || results[0])
  },

  /** 从签署页回来：重新读取绑定，看授权书是否已签署（首次显示时 onLoad 的请求还在进行，不重复请求）。 */
  onShow() {
    if (!this.data.binding || this.data.loading) return Promise.resolve(null)
    return this.loadBinding(this.data.binding.id)
  },

  /** 车辆（GET /api/v1/vehicles）、账户（GET /api/v1/accounts）和已有的绑定（哪辆车已绑定）。 */
  loadChoices() {
    this.setData({ loading: true, error: null })
    const bindings = api.request({ url: '/api/v1/etc-bindings' }).then((body) => (body && body.bindings) || [], () => [])
    return Promise.all([api.request({ url: '/api/v1/vehicles' }), api.request({ url: '/api/v1/accounts' }), bindings])
      .then(([vbody, abody, bound]) => {
        const byVehicle = {}
        bound.filter((b) => b.status !== 'unbound').forEach((b) => { byVehicle[b.vehicle_id] = b })
        const vehicles = ((vbody && vbody.vehicles) || []).map((v) => etc.viewVehicle(v, byVehicle[v.id] || null))
        const accounts = ((abody && abody.accounts) || []).slice().sort((a, b) => b.id - a.id).map(viewChoiceAccount)
        let vehicleId = this.data.vehicleId
        if (!vehicles.some((v) => v.id === vehicleId)) {
          const preferred = vehicles.find((v) => v.id === this.preferredVehicle)
          const free = vehicles.find((v) => !v.bindingId)
          vehicleId = (preferred || free || vehicles[0] || {}).id || null
        }
        let accountId = this.data.accountId
        if (!accounts.some((a) => a.id === accountId && a.eligible)) accountId = (accounts.find((a) => a.eligible) || {}).id || null
        const update = {
          loading: false,
          loaded: true,
          vehicles,
          vehicleId,
          accounts,
          accountId,
          eligibleCount: accounts.filter((a) => a.eligible).length
        }
        if (this.data.binding) update.bindingAccount = accountText(accounts.find((a) => a.id === this.data.binding.accountId))
        this.setData(update)
        return { vehicles, accounts }
      }).catch((err) => {
        this.setData({ loading: false })
        return this.fail(err)
      })
  },

  onChooseVehicle(e) {
    const id = accountsUtil.parseId(e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.id : null)
    if (id && this.data.vehicles.some((v) => v.id === id)) this.setData({ vehicleId: id })
  },

  /** 选择扣款账户：只有状态正常的Ⅱ类户可以绑定（其它的不发请求，直接提示）。 */
  onChooseAccount(e) {
    const id = accountsUtil.parseId(e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.id : null)
    const account = this.data.accounts.find((a) => a.id === id)
    if (!account) return
    if (!account.eligible) {
      this.fail(localError('ACCOUNT_NOT_ELIGIBLE'), 'account_id')
      return
    }
    this.setData({ accountId: id, error: null })
  },

  /** ETC 卡号只留数字（按 4 位一组输入的空格去掉）。 */
  onCardInput(e) {
    const cardNumber = etc.normaliseCard(e && e.detail ? e.detail.value : '')
    this.setData({ cardNumber, cardDigits: cardNumber.length })
    return cardNumber
  },

  /** 本地检查：返回错误码或 null。 */
  check() {
    if (!this.data.vehicleId) return { code: 'VEHICLE_REQUIRED', field: 'vehicle_id' }
    if (!this.data.accountId) return { code: 'ACCOUNT_REQUIRED', field: 'account_id' }
    if (!etc.cardOk(this.data.cardNumber)) return { code: 'ETC_CARD_INVALID', field: 'card_number' }
    return null
  },

  /**
   * 创建绑定：POST /api/v1/etc-bindings {vehicle_id, card_number, account_id}（整数 id，卡号字符串）→ 待开通，
   * 接着签署 ETC 自动扣款授权书（authorisation_contract_id）。同一张卡、同一辆车、同一账户再提交得到原来的绑定。
   */
  onSubmit() {
    if (this.data.submitting) return Promise.resolve(null)
    const problem = this.check()
    if (problem) return Promise.resolve(this.fail(localError(problem.code), problem.field))
    this.setData({ submitting: true, error: null })
    return api.request({
      url: '/api/v1/etc-bindings',
      method: 'POST',
      data: { vehicle_id: this.data.vehicleId, card_number: this.data.cardNumber, account_id: this.data.accountId }
    }).then((binding) => {
      this.setData({ submitting: false })
      this.showBinding(binding)
      if (binding.status === 'pending') wx.showToast({ title: '请签署自动扣款授权书', icon: 'none' })
      return this.checkAuthorised().then(() => binding)
    }).catch((err) => {
      this.setData({ submitting: false })
      return this.fail(err)
    })
  },

  /** GET /api/v1/etc-bindings/{id}，以及（待开通时）授权书是否已签署。 */
  loadBinding(id) {
    this.setData({ loading: true, error: null })
    return api.request({ url: '/api/v1/etc-bindings/' + encodeURIComponent(id) }).then((binding) => {
      this.setData({ loading: false })
      this.showBinding(binding)
      return this.checkAuthorised().then(() => binding)
    }).catch((err) => {
      this.setData({ loading: false })
      return this.fail(err)
    })
  },

  showBinding(binding) {
    const view = etc.viewBinding(binding)
    this.setData({
      binding: view,
      bindingAccount: accountText(this.data.accounts.find((a) => a.id === view.accountId)),
      authorised: !view.pending
    })
  },

  /**
   * 授权书是否已签署（以服务端为准）：GET /api/v1/contracts?template=etc_autodebit&status=signed 里有这个绑定的。
   * 查询失败时显示为未签署（开通时服务端会再检查）。
   */
  checkAuthorised() {
    const binding = this.data.binding
    if (!binding || !binding.pending) return Promise.resolve(!!binding)
    return api.request({ url: '/api/v1/contracts', data: { template: AUTHORISATION, status: 'signed' } }).then((body) => {
      const list = (body && body.contracts) || []
      const signed = list.some((c) => c && c.status === 'signed' && String(c.subject_id) === String(binding.id))
      this.setData({ authorised: signed })
      return signed
    }, () => false)
  },

  /** 去签署授权书：签署页以绑定 id 为 subject_id 取得这份授权书（authorisation_contract_id）。 */
  goSign() {
    const binding = this.data.binding
    if (!binding || !binding.pending) return
    if (this.data.authorised) {
      wx.showToast({ title: '授权书已签署，请开通', icon: 'none' })
      return
    }
    wx.navigateTo({ url: '/pages/contract/contract?template=' + AUTHORISATION + '&subject_id=' + binding.id })
  },

  /** 开通：POST /api/v1/etc-bindings/{id}/activate（授权书未签署时服务端拒绝：AUTHORISATION_NOT_SIGNED）。 */
  onActivate() {
    const binding = this.data.binding
    if (!binding || this.data.activating) return Promise.resolve(null)
    this.setData({ activating: true, error: null })
    // 点击的同步部分里请求扣款成功、欠费提醒的订阅，再开通。
    return subscribe.ask('binding').then(() => api.request({
      url: '/api/v1/etc-bindings/' + encodeURIComponent(binding.id) + '/activate', method: 'POST'
    })).then((b) => {
      this.setData({ activating: false })
      this.showBinding(b)
      if (b.status === 'active') wx.showToast({ title: '开通成功', icon: 'success' })
      return b
    }).catch((err) => {
      this.setData({ activating: false })
      if (err.code === 'AUTHORISATION_NOT_SIGNED') this.setData({ authorised: false })
      this.fail(err)
      if (err.code !== 'BINDING_CLOSED') return null
      // 待开通超时已结束：按服务端的状态显示，错误提示保留。
      const error = this.data.error
      return this.loadBinding(binding.id).then(() => {
        this.setData({ error })
        return null
      })
    })
  },

  /** 重新填写（换一张卡 / 一辆车）：回到表单。 */
  onRestart() {
    this.setData({ binding: null, bindingAccount: '', authorised: false, cardNumber: '', cardDigits: 0, error: null })
    return this.loadChoices()
  },

  goBinding() {
    if (this.data.binding) wx.redirectTo({ url: '/pages/etc/binding/binding?id=' + this.data.binding.id })
  },

  goVehicles() {
    wx.navigateTo({ url: '/pages/etc/vehicles/vehicles' })
  },

  goOpenAccount() {
    wx.navigateTo({ url: '/pages/account/open/open?class=II' })
  },

  fail(err, field) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || field || null } })
    return null
  }
})
