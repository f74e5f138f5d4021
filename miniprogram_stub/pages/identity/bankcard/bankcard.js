const api = require('../../../utils/api')
const errors = require('../../../utils/errors')

Page({
  data: {
    cardNumber: '',
    reservedPhone: '',
    submitting: false,
    result: null,
    error: null
  },

  onCardInput(e) {
    this.setData({ cardNumber: String(e.detail.value || '').replace(/\D+/g, '') })
  },

  onPhoneInput(e) {
    this.setData({ reservedPhone: String(e.detail.value || '').replace(/\D+/g, '') })
  },

  validate() {
    if (!/^\d{12,19}$/.test(this.data.cardNumber)) return '请输入正确的银行卡号'
    if (!/^1\d{10}$/.test(this.data.reservedPhone)) return '请输入银行预留的11位手机号'
    return ''
  },

  /** 同名银行卡四要素核验：POST /api/v1/identity/bank-card。 */
  onSubmit() {
    if (this.data.submitting) return Promise.resolve(null)
    const problem = this.validate()
    if (problem) {
      wx.showToast({ title: problem, icon: 'none' })
      this.setData({ error: { code: 'FORM_INVALID', message: problem, field: null } })
      return Promise.resolve(null)
    }
    this.setData({ submitting: true, error: null, result: null })
    return api.request({
      url: '/api/v1/identity/bank-card',
      method: 'POST',
      data: { card_number: this.data.cardNumber, reserved_phone: this.data.reservedPhone }
    }).then((body) => {
      this.setData({ submitting: false, result: body })
      if (body.verified) wx.showToast({ title: '银行卡验证通过', icon: 'success' })
      return body
    }).catch((err) => {
      this.setData({ submitting: false })
      const message = errors.showFriendlyError(err)
      this.setData({ error: { code: err.code, message, field: err.field || null } })
      return null
    })
  },

  goHome() {
    wx.reLaunch({ url: '/pages/index/index' })
  }
})
