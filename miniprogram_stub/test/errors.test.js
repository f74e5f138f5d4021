/**
 * utils/errors.js messages and how the pages show them, without a backend: wx.request is answered here.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const shim = require('./wx-shim')

shim.install({ baseUrl: 'http://127.0.0.1:9' })
const errors = require('../utils/errors')

const PENDING = '人脸核验结果尚未确认，请完成人脸核验后重试'

/** Answers wx.request with handler(opts) → {statusCode, data}; records the calls. */
function fakeRequests(handler) {
  const real = shim.wx.request
  const calls = []
  shim.wx.request = (opts) => {
    calls.push({ method: opts.method || 'GET', url: opts.url, data: opts.data })
    const res = handler(opts)
    setImmediate(() => opts.success && opts.success(Object.assign({ header: {} }, res)))
    return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {} }
  }
  return { calls, restore: () => { shim.wx.request = real } }
}

function apiError(statusCode, code, message, field) {
  return { statusCode, data: { error: { code, message, field: field || null } } }
}

test('errors: FACE_VERIFICATION_PENDING has its own message, not the "stale" one', () => {
  assert.equal(errors.describe({ code: 'FACE_VERIFICATION_PENDING', message: 'server text' }), PENDING)
  assert.notEqual(errors.MESSAGES.FACE_VERIFICATION_PENDING, errors.MESSAGES.FACE_VERIFICATION_STALE)
  assert.equal(errors.describe({ code: 'FACE_VERIFICATION_STALE' }), '请重新进行人脸核验')
  assert.match(errors.MESSAGES.WECHAT_UPGRADE_REQUIRED, /请升级微信/)
  assert.equal(errors.describe({ code: 'SOMETHING_NEW', message: '服务端的说明' }), '服务端的说明', 'unknown codes show the server message')
  assert.equal(errors.describe(null), '网络异常，请稍后再试')
})

test('contract page: signing with a face check whose result was never fetched says so (FACE_VERIFICATION_PENDING)', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  const contract = { id: 5, contract_no: 'C-1', template: 'privacy_consent', version: '1.0', status: 'draft', sha256: 'a'.repeat(64), signed_sha256: null, expires_at: null, signed_at: null }
  const fake = fakeRequests((opts) => (opts.url.endsWith('/api/v1/contracts/5/sign')
    ? apiError(422, 'FACE_VERIFICATION_PENDING', '人脸核验结果尚未确认，请完成人脸核验后重试', 'verify_id')
    : { statusCode: 404, data: {} }))
  try {
    const page = shim.loadPage('pages/contract/contract')
    page.showContract(contract)
    const result = await page.submitSign({ contractId: 5, body: { signature_upload_id: 9, consent: true, verify_id: 'v-1' } })
    assert.equal(result, null)
    assert.deepEqual(fake.calls.map((c) => c.method + ' ' + new URL(c.url).pathname), ['POST /api/v1/contracts/5/sign'])
    assert.deepEqual(page.data.error, { code: 'FACE_VERIFICATION_PENDING', message: PENDING, field: 'verify_id' })
    assert.equal(shim.lastToast().title, PENDING)
    assert.equal(page.data.signed, false)
    assert.equal(page.data.signing, false)
    const text = shim.render(page).text
    assert.ok(text.includes(PENDING), text)
    assert.ok(!text.includes('签署成功'))
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
  }
})

test('an old WeChat (base library < 3.8.12): the face page and signing ask to upgrade and send nothing', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  shim.state.sdkVersion = '3.8.11'
  const fake = fakeRequests(() => ({ statusCode: 500, data: {} }))
  try {
    assert.equal(shim.wx.canIUse('requestFacialVerify'), false)
    const face = shim.loadPage('pages/identity/face/face')
    face.onLoad({})
    assert.equal(face.data.supported, false)
    let view = shim.render(face)
    assert.match(view.text, /请升级微信/)
    const [start] = view.select('button.primary')
    assert.equal(start.attrs.disabled, true, '开始人脸核身 is disabled')
    assert.equal(await face.onStart(), null)
    assert.match(shim.lastToast().title, /请升级微信/)
    assert.equal(face.data.error.code, 'WECHAT_UPGRADE_REQUIRED')

    const contract = shim.loadPage('pages/contract/contract')
    contract.showContract({ id: 5, contract_no: 'C-1', template: 'privacy_consent', version: '1.0', status: 'draft', sha256: 'a'.repeat(64), signed_sha256: null, expires_at: null, signed_at: null })
    contract.setData({ consent: true, hasSignature: true })
    assert.equal(await contract.onSign(), null)
    assert.match(shim.lastToast().title, /请升级微信/)
    assert.equal(contract.data.error.code, 'WECHAT_UPGRADE_REQUIRED')
    view = shim.render(contract)
    assert.match(view.text, /请升级微信/)
    assert.equal(shim.state.requests.length + fake.calls.length, 0, 'no request, no upload')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})
