const api = require('../../../utils/api')
const errors = require('../../../utils/errors')

/** 调起微信人脸核身 2.0；无论成功失败都 resolve，最终结果以后端查询为准。 */
function facialVerify(verifyId) {
  return new Promise((resolve) => {
    if (typeof wx.requestFacialVerify !== 'function') {
      resolve({ ok: false, errCode: -1, errMsg: '当前微信版本不支持人脸核身' })
      return
    }
    wx.requestFacialVerify({
      verifyId,
      success(res) {
        resolve({ ok: true, errCode: (res && res.errCode) || 0, errMsg: (res && res.errMsg) || '' })
      },
      fail(err) {
        resolve({ ok: false, errCode: (err && err.errCode) || -1, errMsg: (err && err.errMsg) || '' })
      }
    })
  })
}

Page({
  data: {
    verifyId: '',
    running: false,
    result: null,
    error: null
  },

  /** 开始人脸核身：取 verify_id → wx.requestFacialVerify → 向后端查询结果。 */
  onStart() {
    if (this.data.running) return Promise.resolve(null)
    this.setData({ running: true, result: null, error: null })
    return api.request({ url: '/api/v1/identity/face', method: 'POST', data: {} }).then((body) => {
      this.setData({ verifyId: body.verify_id })
      return facialVerify(body.verify_id)
    }).then((client) => {
      this.clientResult = client
      return api.request({
        url: '/api/v1/identity/face/' + encodeURIComponent(this.data.verifyId) + '/result',
        method: 'POST',
        data: {}
      })
    }).then((body) => {
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
    wx.navigateTo({ url: '/pages/identity/bankcard/bankcard' })
  }
})
