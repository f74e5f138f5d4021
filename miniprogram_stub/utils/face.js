/**
 * 微信人脸核身（人脸核身页和签署前的意愿核验共用）：
 * POST /api/v1/identity/face → wx.requestFacialVerify({verifyId}) → POST /api/v1/identity/face/{verify_id}/result。
 * 结果以后端查询为准（客户端的成功/失败只作参考）。
 *
 * 人脸核身 2.0（wx.requestFacialVerify）需要基础库 ≥ 3.8.12（project.config.json 的 libVersion）；
 * 低版本微信用 wx.canIUse 判断，提示“请升级微信”，不发起核验。
 */
const api = require('./api')
const errors = require('./errors')

const MIN_BASE_LIBRARY = '3.8.12'

/** 当前微信能否调起人脸核身 2.0。 */
function isSupported() {
  if (typeof wx.requestFacialVerify !== 'function') return false
  return typeof wx.canIUse === 'function' && !!wx.canIUse('requestFacialVerify')
}

function upgradeRequired() {
  return new api.ApiError({ status: 0, code: 'WECHAT_UPGRADE_REQUIRED', message: errors.MESSAGES.WECHAT_UPGRADE_REQUIRED })
}

/** 调起微信人脸核身 2.0；无论成功失败都 resolve {ok, errCode, errMsg}。 */
function facialVerify(verifyId) {
  return new Promise((resolve) => {
    if (!isSupported()) {
      resolve({ ok: false, errCode: -1, errMsg: errors.MESSAGES.WECHAT_UPGRADE_REQUIRED })
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

/**
 * 完整做一次人脸核身。hooks.onVerifyId(verifyId)、hooks.onClient(clientResult) 在对应步骤完成时回调。
 * resolve {verifyId, client, result}（result 为后端结果，含 passed）；后端报错时以 ApiError reject；
 * 微信版本过低时不发任何请求，以 WECHAT_UPGRADE_REQUIRED reject。
 */
function verifyFace(hooks) {
  hooks = hooks || {}
  if (!isSupported()) return Promise.reject(upgradeRequired())
  let verifyId = ''
  let client = null
  return api.request({ url: '/api/v1/identity/face', method: 'POST', data: {} }).then((body) => {
    verifyId = body.verify_id
    if (typeof hooks.onVerifyId === 'function') hooks.onVerifyId(verifyId)
    return facialVerify(verifyId)
  }).then((res) => {
    client = res
    if (typeof hooks.onClient === 'function') hooks.onClient(client)
    return api.request({
      url: '/api/v1/identity/face/' + encodeURIComponent(verifyId) + '/result',
      method: 'POST',
      data: {}
    })
  }).then((result) => ({ verifyId, client, result }))
}

module.exports = { MIN_BASE_LIBRARY, isSupported, upgradeRequired, facialVerify, verifyFace }
