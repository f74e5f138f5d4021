const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const accounts = require('../../../utils/accounts')
const face = require('../../../utils/face')

/** 本页的错误提示：更换绑定卡时账户受限、有处理中的转账说得更具体（其余用 utils/errors.js）。 */
const OVERRIDES = {
  ACCOUNT_RESTRICTED: '账户已挂失或被冻结，暂不能更换绑定银行卡',
  ID_EXPIRED: '身份证件已过期，请先更新身份证后再更换绑定银行卡'
}

Page({
  data: {
    accountId: null,
    account: null,
    cardNumber: '',
    reservedPhone: '',
    blocked: '',
    submitting: false,
    done: false,
    error: null
  },

  /** options: {id: 账户 id}（从“我的账户”的“更换绑定银行卡”进入）。 */
  onLoad(options) {
    options = options || {}
    const accountId = accounts.parseId(options.id)
    this.setData({ accountId })
    if (!api.isLoggedIn()) {
      wx.navigateTo({ url: '/pages/login/login' })
      return Promise.resolve(null)
    }
    if (!accountId) return Promise.resolve(this.fail(new api.ApiError({ status: 404, code: 'ACCOUNT_NOT_FOUND' })))
    return this.loadAccount()
  },

  /** GET /api/v1/accounts/{id}：现在的绑定卡；受限或已销户时不能更换（说明原因，表单不可提交）。 */
  loadAccount() {
    return api.request({ url: '/api/v1/accounts/' + encodeURIComponent(this.data.accountId) }).then((a) => {
      this.setData({ account: accounts.viewAccount(a), blocked: this.blockedBy(a) })
      return a
    }).catch((err) => this.fail(err))
  },

  blockedBy(a) {
    if (!a) return ''
    if (a.status === 'closed' || a.status === 'closing') return errors.MESSAGES.ACCOUNT_CLOSED
    const codes = (Array.isArray(a.restrictions) ? a.restrictions : []).map((r) => r.code)
    if (codes.indexOf('ID_EXPIRED') >= 0) return OVERRIDES.ID_EXPIRED
    if (codes.length) return OVERRIDES.ACCOUNT_RESTRICTED
    return ''
  },

  onCardInput(e) {
    this.setData({ cardNumber: String((e && e.detail && e.detail.value) || '').replace(/\D+/g, '') })
  },

  onPhoneInput(e) {
    this.setData({ reservedPhone: String((e && e.detail && e.detail.value) || '').replace(/\D+/g, '') })
  },

  validate() {
    if (!/^\d{12,19}$/.test(this.data.cardNumber)) return '请输入正确的银行卡号'
    if (!/^1\d{10}$/.test(this.data.reservedPhone)) return '请输入银行预留的11位手机号'
    return ''
  },

  /**
   * 更换绑定银行卡：人脸核验（与解除挂失相同的流程，utils/face.js）→
   * POST /api/v1/accounts/{id}/bound-card {card_number, reserved_phone, verify_id}。
   * 新卡按开户时的要求核验（本人名下一类借记卡或信用卡、预留手机号一致）；核验不通过时原绑定卡不变。
   */
  onSubmit() {
    if (this.data.submitting || !this.data.account || this.data.blocked) return Promise.resolve(null)
    const problem = this.validate()
    if (problem) {
      wx.showToast({ title: problem, icon: 'none' })
      this.setData({ error: { code: 'FORM_INVALID', message: problem, field: null } })
      return Promise.resolve(null)
    }
    if (!face.isSupported()) return Promise.resolve(this.fail({ code: 'WECHAT_UPGRADE_REQUIRED' }))
    this.setData({ submitting: true, error: null, done: false })
    return face.verifyFace({}).then((outcome) => {
      if (!outcome.result || !outcome.result.passed) {
        throw new api.ApiError({ status: 0, code: 'FACE_NOT_PASSED', message: errors.MESSAGES.FACE_NOT_PASSED })
      }
      return api.request({
        url: '/api/v1/accounts/' + encodeURIComponent(this.data.accountId) + '/bound-card',
        method: 'POST',
        data: { card_number: this.data.cardNumber, reserved_phone: this.data.reservedPhone, verify_id: outcome.verifyId }
      })
    }).then((a) => {
      this.setData({ submitting: false, done: true, account: accounts.viewAccount(a), cardNumber: '', reservedPhone: '' })
      wx.showToast({ title: '绑定银行卡已更换', icon: 'success' })
      return a
    }).catch((err) => {
      this.setData({ submitting: false })
      return this.fail(err)
    })
  },

  goAccount() {
    wx.navigateBack({ delta: 1 })
  },

  fail(err) {
    const message = errors.showFriendlyError(err, OVERRIDES)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})
