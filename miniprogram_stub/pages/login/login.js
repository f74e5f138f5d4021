const api = require('../../utils/api')
const errors = require('../../utils/errors')

const PHONE_MESSAGES = {
  WECHAT_CODE_INVALID: '手机号授权已失效，请重新获取'
}

Page({
  data: {
    user: null,
    phone: '',
    loggingIn: false,
    binding: false,
    error: null
  },

  onLoad() {
    if (api.isLoggedIn()) return this.loadMe()
    return Promise.resolve(null)
  },

  loadMe() {
    return api.request({ url: '/api/v1/me' }).then((user) => {
      this.setData({ user, phone: user.phone || '' })
      return user
    }).catch((err) => this.fail(err))
  },

  /** “微信登录”按钮：wx.login → 后端登录 → 读取个人信息。 */
  onTapLogin() {
    if (this.data.loggingIn) return Promise.resolve(null)
    this.setData({ loggingIn: true, error: null })
    return api.login().then(() => api.request({ url: '/api/v1/me' })).then((user) => {
      this.setData({ user, phone: user.phone || '', loggingIn: false })
      wx.showToast({ title: '登录成功', icon: 'success' })
      return user
    }).catch((err) => {
      this.setData({ loggingIn: false })
      return this.fail(err)
    })
  },

  /** <button open-type="getPhoneNumber">：把 e.detail.code 交给后端换取手机号。 */
  onGetPhoneNumber(e) {
    const detail = (e && e.detail) || {}
    if (!detail.code) {
      // 用户拒绝授权或基础库过低（没有 code）。
      const denied = /deny|cancel/i.test(detail.errMsg || '')
      wx.showToast({ title: denied ? '需要授权手机号才能继续办理' : '获取手机号失败，请重试', icon: 'none' })
      return Promise.resolve(null)
    }
    if (this.data.binding) return Promise.resolve(null)
    this.setData({ binding: true, error: null })
    return api.request({
      url: '/api/v1/me/phone',
      method: 'POST',
      data: { code: detail.code }
    }).then((body) => {
      const update = { phone: body.phone, binding: false }
      if (this.data.user) update['user.phone'] = body.phone
      this.setData(update)
      wx.showToast({ title: '手机号已绑定', icon: 'success' })
      return body.phone
    }).catch((err) => {
      this.setData({ binding: false })
      return this.fail(err, PHONE_MESSAGES)
    })
  },

  fail(err, overrides) {
    const message = errors.showFriendlyError(err, overrides)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    if (err.code === 'UNAUTHORIZED' && !api.isLoggedIn()) this.setData({ user: null, phone: '' })
    return null
  },

  goHome() {
    wx.navigateBack({
      fail() {
        wx.reLaunch({ url: '/pages/index/index' })
      }
    })
  }
})
