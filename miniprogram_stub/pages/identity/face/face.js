const errors = require('../../../utils/errors')
const face = require('../../../utils/face')
const accounts = require('../../../utils/accounts')

Page({
  data: {
    supported: true,
    verifyId: '',
    running: false,
    result: null,
    error: null,
    renew: false
  },

  /**
   * options: {renew?: '1', account_id?}：更新身份证的最后一步——核验通过时后端解除“身份证过期”限制，之后回到账户页。
   * 低版本微信（基础库 < 3.8.12）不支持人脸核身 2.0：提示升级，按钮不可用。
   */
  onLoad(options) {
    options = options || {}
    this.accountId = accounts.parseId(options.account_id)
    if (options.renew === '1') this.setData({ renew: true })
    if (face.isSupported()) return
    const err = face.upgradeRequired()
    this.setData({ supported: false, error: { code: err.code, message: err.message, field: null } })
  },

  /** 开始人脸核身：取 verify_id → wx.requestFacialVerify → 向后端查询结果。 */
  onStart() {
    if (this.data.running) return Promise.resolve(null)
    if (!face.isSupported()) {
      const err = face.upgradeRequired()
      errors.showFriendlyError(err)
      this.setData({ supported: false, error: { code: err.code, message: err.message, field: null } })
      return Promise.resolve(null)
    }
    this.setData({ running: true, result: null, error: null })
    return face.verifyFace({
      onVerifyId: (verifyId) => this.setData({ verifyId }),
      onClient: (client) => {
        this.clientResult = client
      }
    }).then((outcome) => {
      const body = outcome.result
      this.setData({ running: false, result: body })
      wx.showToast({ title: body.passed ? '人脸核身通过' : '人脸核身未通过', icon: body.passed ? 'success' : 'none' })
      return body
    }).catch((err) => {
      this.setData({ running: false })
      const message = errors.showFriendlyError(err)
      this.setData({ error: { code: err.code, message, field: err.field || null } })
      return null
    })
  },

  goNext() {
    if (this.data.renew) {
      // 回到账户页重新读取：限制已解除（挂失、冻结等其他限制仍会显示）。
      wx.reLaunch({ url: '/pages/account/account' + (this.accountId ? '?id=' + this.accountId : '') })
      return
    }
    wx.navigateTo({ url: '/pages/identity/bankcard/bankcard' })
  }
})
