/**
 * utils/api.js against the live backend: token refresh on 401, Idempotency-Key reuse,
 * the error shape, and the page-level error messages.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const shim = require('./wx-shim')

const BASE_URL = (process.env.BASE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '')

shim.install({ baseUrl: BASE_URL })
const api = require('../utils/api')
const wx = shim.wx

async function freshLogin() {
  shim.reset()
  const body = await api.login()
  assert.ok(body.access_token && body.refresh_token)
  shim.state.requests.length = 0
  return body
}

function paths() {
  return shim.state.requests.map((r) => r.method + ' ' + new URL(r.url).pathname + ' ' + r.statusCode)
}

test('login stores the token pair and the user', async () => {
  shim.reset()
  const body = await api.login()
  assert.equal(body.token_type, 'Bearer')
  assert.ok(body.expires_in > 0)
  assert.ok(body.user && body.user.id !== undefined)
  assert.equal(wx.getStorageSync('access_token'), body.access_token)
  assert.equal(wx.getStorageSync('refresh_token'), body.refresh_token)
  assert.deepEqual(getApp().globalData.user, body.user)
})

test('401 with a refresh token: refreshes once, stores the new pair, retries the call', async () => {
  const first = await freshLogin()
  wx.setStorageSync('access_token', 'garbage.garbage.garbage')
  const me = await api.request({ url: '/api/v1/me' })
  assert.equal(me.id, first.user.id)
  assert.deepEqual(paths(), ['GET /api/v1/me 401', 'POST /api/v1/auth/refresh 200', 'GET /api/v1/me 200'])
  assert.notEqual(wx.getStorageSync('access_token'), 'garbage.garbage.garbage')
  assert.notEqual(wx.getStorageSync('refresh_token'), first.refresh_token, 'refresh token rotated')
  const [a, , b] = shim.state.requests
  assert.notEqual(a.header['X-Request-ID'], b.header['X-Request-ID'], 'each HTTP call has its own request id')
  assert.equal(b.header.Authorization, 'Bearer ' + wx.getStorageSync('access_token'))
})

test('concurrent 401s share a single refresh (rotated refresh tokens must not be reused)', async () => {
  await freshLogin()
  wx.setStorageSync('access_token', 'expired')
  const results = await Promise.all([1, 2, 3].map(() => api.request({ url: '/api/v1/me' })))
  assert.equal(results.length, 3)
  const refreshes = paths().filter((p) => p.includes('/auth/refresh'))
  assert.deepEqual(refreshes, ['POST /api/v1/auth/refresh 200'])
  // The family is still valid: a later refresh works.
  wx.setStorageSync('access_token', 'expired-again')
  await api.request({ url: '/api/v1/me' })
})

test('an idempotent POST keeps its Idempotency-Key across the refresh retry', async () => {
  await freshLogin()
  const code = await shim.control('phone-code', { phone: '13900001111' })
  assert.equal(code.status, 200, code.text)
  wx.setStorageSync('access_token', 'garbage')
  const body = await api.request({ url: '/api/v1/me/phone', method: 'POST', data: { code: code.json.code }, idempotent: true })
  assert.equal(body.phone, '139****1111')
  const calls = shim.state.requests.filter((r) => r.url.endsWith('/api/v1/me/phone'))
  assert.deepEqual(calls.map((c) => c.statusCode), [401, 200])
  const key = calls[0].header['Idempotency-Key']
  assert.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.equal(calls[1].header['Idempotency-Key'], key)
  const plain = shim.state.requests.find((r) => r.url.endsWith('/auth/refresh'))
  assert.equal(plain.header['Idempotency-Key'], undefined)
})

test('a refused refresh clears the tokens and rejects with UNAUTHORIZED', async () => {
  await freshLogin()
  wx.setStorageSync('access_token', 'garbage')
  wx.setStorageSync('refresh_token', 'not-a-refresh-token')
  await assert.rejects(api.request({ url: '/api/v1/me' }), (err) => {
    assert.ok(err instanceof api.ApiError)
    assert.equal(err.code, 'UNAUTHORIZED')
    assert.equal(err.status, 401)
    assert.ok(err.message)
    return true
  })
  assert.equal(wx.getStorageSync('access_token'), '')
  assert.equal(wx.getStorageSync('refresh_token'), '')
  assert.deepEqual(paths(), ['GET /api/v1/me 401', 'POST /api/v1/auth/refresh 401'])
})

test('a reused (rotated) refresh token is refused', async () => {
  const first = await freshLogin()
  wx.setStorageSync('access_token', 'garbage')
  await api.request({ url: '/api/v1/me' })
  // Put the already-rotated refresh token back: the backend must refuse it.
  wx.setStorageSync('access_token', 'garbage')
  wx.setStorageSync('refresh_token', first.refresh_token)
  await assert.rejects(api.request({ url: '/api/v1/me' }), { code: 'UNAUTHORIZED' })
  assert.equal(wx.getStorageSync('refresh_token'), '')
})

test('401 without a refresh token rejects with the server error, no refresh attempted', async () => {
  shim.reset()
  await assert.rejects(api.request({ url: '/api/v1/me' }), (err) => {
    assert.equal(err.status, 401)
    assert.ok(err.code)
    return true
  })
  assert.deepEqual(paths(), ['GET /api/v1/me 401'])
})

test('error shape: a bad login code rejects with WECHAT_CODE_INVALID and showError toasts the server message', async () => {
  shim.reset()
  shim.state.nextLoginCode = 'not-a-real-code'
  let caught = null
  await api.login().catch((err) => {
    caught = err
  })
  assert.ok(caught instanceof api.ApiError, String(caught))
  assert.equal(caught.status, 400)
  assert.equal(caught.code, 'WECHAT_CODE_INVALID')
  assert.ok(caught.message && caught.message !== api.FALLBACK_MESSAGE, 'the server message is kept: ' + caught.message)
  assert.ok(caught.requestId, 'X-Request-ID header on the error response')
  const raw = shim.state.requests[0].response
  assert.equal(raw.error.code, 'WECHAT_CODE_INVALID')
  assert.equal(raw.error.message, caught.message)
  api.showError(caught)
  assert.deepEqual(shim.lastToast(), { title: raw.error.message, icon: 'none', duration: 2500 })
  assert.equal(wx.getStorageSync('access_token'), '')
})

test('error shape: a used login code is refused as WECHAT_CODE_INVALID', async () => {
  shim.reset()
  const res = await shim.control('login-code', { openid: shim.state.openid })
  assert.equal(res.status, 200, res.text)
  shim.state.nextLoginCode = res.json.code
  await api.login()
  shim.state.nextLoginCode = res.json.code
  await assert.rejects(api.login(), { status: 400, code: 'WECHAT_CODE_INVALID' })
})

test('error shape: unknown route is a 404 in the error shape', async () => {
  await freshLogin()
  await assert.rejects(api.request({ url: '/api/v1/no-such-route' }), (err) => {
    assert.equal(err.status, 404)
    assert.equal(err.code, 'NOT_FOUND')
    return true
  })
})

test('network failure rejects with NETWORK_ERROR and the fallback message', async () => {
  shim.reset()
  await assert.rejects(api.request({ url: 'http://127.0.0.1:9/nothing', timeout: 3000 }), (err) => {
    assert.equal(err.code, 'NETWORK_ERROR')
    assert.equal(err.status, 0)
    assert.equal(err.message, '网络异常，请稍后再试')
    return true
  })
})

test('login page: a bad code shows a friendly toast and stays logged out', async () => {
  shim.reset()
  const page = shim.loadPage('pages/login/login')
  shim.state.nextLoginCode = 'bad-code'
  const user = await page.onTapLogin()
  assert.equal(user, null)
  assert.equal(page.data.user, null)
  assert.equal(page.data.loggingIn, false)
  assert.equal(page.data.error.code, 'WECHAT_CODE_INVALID')
  assert.equal(shim.lastToast().title, '微信授权已失效，请重试')
  assert.equal(shim.lastToast().icon, 'none')
  assert.deepEqual(shim.state.renderErrors, [])
  const text = shim.render(page).text
  assert.ok(text.includes('微信授权已失效，请重试') && text.includes('微信登录'), text)
})

test('login page: a used phone code shows the phone-specific message', async () => {
  await freshLogin()
  const page = shim.loadPage('pages/login/login')
  await page.onLoad({})
  const code = await shim.control('phone-code', { phone: '13700002222' })
  await page.onGetPhoneNumber({ detail: { code: code.json.code } })
  assert.equal(page.data.phone, '137****2222', JSON.stringify(page.data.error))
  await page.onGetPhoneNumber({ detail: { code: code.json.code } })
  assert.equal(page.data.error && page.data.error.code, 'WECHAT_CODE_INVALID', JSON.stringify(page.data.error))
  assert.equal(shim.lastToast().title, '手机号授权已失效，请重新获取')
  assert.equal(page.data.phone, '137****2222', 'the bound phone stays shown')
  assert.deepEqual(shim.state.renderErrors, [])
  const text = shim.render(page).text
  assert.ok(text.includes('手机号\n137****2222') && text.includes('手机号授权已失效，请重新获取'), text)
})

test('logout revokes the refresh family and clears the tokens', async () => {
  const first = await freshLogin()
  await api.logout()
  assert.equal(wx.getStorageSync('access_token'), '')
  const res = await fetch(BASE_URL + '/api/v1/auth/refresh', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ refresh_token: first.refresh_token })
  })
  assert.equal(res.status, 401)
  const body = await res.json()
  assert.ok(body.error && body.error.code)
})

async function contractsRoute() {
  const res = await fetch(BASE_URL + '/api/v1/contracts', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })
  return res.status !== 404
}

test('download: bearer + refresh on 401, a JSON error body in the temp file becomes an ApiError', async (t) => {
  if (!(await contractsRoute())) {
    t.skip('POST /api/v1/contracts answers 404: contract endpoints not built yet')
    return
  }
  await freshLogin()
  wx.setStorageSync('access_token', 'expired')
  await assert.rejects(api.download({ url: '/api/v1/contracts/999999999/pdf' }), (err) => {
    assert.ok(err instanceof api.ApiError)
    assert.equal(err.status, 404)
    assert.equal(err.code, 'CONTRACT_NOT_FOUND')
    return true
  })
  assert.deepEqual(paths(), [
    'GET /api/v1/contracts/999999999/pdf 401',
    'POST /api/v1/auth/refresh 200',
    'GET /api/v1/contracts/999999999/pdf 404'
  ])
  const last = shim.state.requests[2]
  assert.equal(last.kind, 'download')
  assert.equal(last.header.Authorization, 'Bearer ' + wx.getStorageSync('access_token'))
})

test('contract page: without a verified ID card it asks for the ID card first', async (t) => {
  if (!(await contractsRoute())) {
    t.skip('POST /api/v1/contracts answers 404: contract endpoints not built yet')
    return
  }
  await freshLogin()
  const page = shim.loadPage('pages/contract/contract')
  assert.equal(await page.onLoad({ template: 'privacy_consent' }), null)
  assert.equal(page.data.contract, null)
  assert.equal(page.data.error && page.data.error.code, 'ID_CARD_REQUIRED', JSON.stringify(page.data.error))
  assert.equal(shim.lastToast().title, '请先完成身份证核验')
  const view = shim.render(page)
  assert.ok(view.text.includes('请先完成身份证核验') && view.text.includes('去完成身份证核验'), view.text)
  assert.ok(!view.text.includes('协议编号'), 'no contract shown')
  page.goIdCard()
  assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/identity/idcard/idcard' })

  const unknown = shim.loadPage('pages/contract/contract')
  await unknown.onLoad({ template: 'no_such_template' })
  assert.equal(unknown.data.error && unknown.data.error.code, 'CONTRACT_TEMPLATE_NOT_FOUND', JSON.stringify(unknown.data.error))
  assert.equal(shim.lastToast().title, '协议类型不存在')

  // subject_id is sent as an integer; one that is not a positive integer is refused before any request.
  const before = shim.state.requests.length
  const bad = shim.loadPage('pages/contract/contract')
  assert.equal(await bad.onLoad({ template: 'etc_autodebit', subject_id: 'abc' }), null)
  assert.equal(bad.data.error.code, 'SUBJECT_NOT_FOUND')
  assert.equal(shim.state.requests.slice(before).filter((r) => r.method === 'POST').length, 0, 'no POST /api/v1/contracts')
  const numeric = shim.loadPage('pages/contract/contract')
  await numeric.onLoad({ template: 'etc_autodebit', subject_id: '42' })
  const prepare = shim.state.requests.filter((r) => r.method === 'POST' && new URL(r.url).pathname === '/api/v1/contracts').pop()
  assert.deepEqual(prepare.data, { template: 'etc_autodebit', subject_id: 42 })
  assert.ok(numeric.data.error, 'the backend refuses it for its own reason (no such binding / no ID card)')
  assert.deepEqual(shim.state.renderErrors, [])
})
