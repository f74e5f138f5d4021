/**
 * The device id utils/api.js sends as X-Device on every request (risk control), without a backend:
 * wx.request / wx.uploadFile / wx.downloadFile are answered here.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const shim = require('./wx-shim')

shim.install({ baseUrl: 'http://127.0.0.1:9' })

const API = path.join(__dirname, '..', 'utils', 'api.js')
// The backend's pattern (handlers/common.py DEVICE_ID); a malformed id is ignored there.
const SERVER_PATTERN = /^[A-Za-z0-9_-]{8,64}$/

/** utils/api.js loaded afresh: what a restart of the mini-program does to module state (storage is kept). */
function freshApi() {
  delete require.cache[require.resolve(API)]
  return require(API)
}

function headerOf(call, name) {
  const key = Object.keys(call.header || {}).find((k) => k.toLowerCase() === name.toLowerCase())
  return key === undefined ? undefined : call.header[key]
}

/** Answers wx.request (and uploadFile / downloadFile) from handler(opts) → {statusCode, data}; records the calls. */
function fakeNetwork(handler) {
  const real = { request: shim.wx.request, uploadFile: shim.wx.uploadFile, downloadFile: shim.wx.downloadFile }
  const calls = []
  const answer = (kind) => (opts) => {
    calls.push({ kind, method: opts.method || (kind === 'request' ? 'GET' : kind === 'upload' ? 'POST' : 'GET'), url: opts.url, header: Object.assign({}, opts.header) })
    const res = handler(opts) || { statusCode: 200, data: {} }
    setImmediate(() => {
      if (kind === 'upload') opts.success(Object.assign({ header: {} }, res, { data: JSON.stringify(res.data) }))
      else if (kind === 'download') opts.success({ statusCode: res.statusCode, tempFilePath: '/tmp/none', header: {} })
      else opts.success(Object.assign({ header: {} }, res))
    })
    return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {}, onProgressUpdate() {} }
  }
  shim.wx.request = answer('request')
  shim.wx.uploadFile = answer('upload')
  shim.wx.downloadFile = answer('download')
  return { calls, restore: () => Object.assign(shim.wx, real) }
}

test('device id: made once (wx.getRandomValues, 32 hex), kept in storage, sent on every request: GET, POST, refresh, upload, download', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'expired')
  shim.wx.setStorageSync('refresh_token', 'r1')
  const api = freshApi()
  let meCalls = 0
  const fake = fakeNetwork((opts) => {
    const p = new URL(opts.url).pathname
    if (p === '/api/v1/me') return ++meCalls === 1 ? { statusCode: 401, data: { error: { code: 'UNAUTHORIZED', message: 'x' } } } : { statusCode: 200, data: { id: 1 } }
    if (p === '/api/v1/auth/refresh') return { statusCode: 200, data: { access_token: 'a2', refresh_token: 'r2' } }
    return { statusCode: 200, data: { ok: true } }
  })
  try {
    assert.equal(shim.wx.getStorageSync('device_id'), '', 'no id before the first request')
    // The first requests arrive together: one id for all of them, made once.
    await Promise.all([
      api.request({ url: '/api/v1/me' }),
      api.request({ url: '/api/v1/accounts' }),
      api.request({ url: '/api/v1/accounts/5/top-ups', method: 'POST', data: { amount_fen: 100 }, idempotent: true })
    ])
    await api.upload({ url: '/api/v1/uploads', filePath: '/tmp/x.png', formData: { kind: 'signature' } })
    await api.download({ url: '/api/v1/contracts/1/pdf' }).catch(() => null)
    await api.request({ url: '/api/v1/me' })

    const id = shim.wx.getStorageSync('device_id')
    assert.match(id, /^[0-9a-f]{32}$/, '16 random bytes as hex')
    assert.match(id, SERVER_PATTERN, 'the backend accepts it')
    assert.equal(shim.state.randomValuesCalls, 1, 'made once, from wx.getRandomValues')
    assert.deepEqual(fake.calls.map((c) => c.kind + ' ' + c.method + ' ' + new URL(c.url).pathname), [
      'request GET /api/v1/me', 'request GET /api/v1/accounts', 'request POST /api/v1/accounts/5/top-ups',
      'request POST /api/v1/auth/refresh', 'request GET /api/v1/me',
      'upload POST /api/v1/uploads', 'download GET /api/v1/contracts/1/pdf', 'request GET /api/v1/me'
    ])
    for (const call of fake.calls) assert.equal(headerOf(call, 'X-Device'), id, call.kind + ' ' + call.url)
    assert.equal(api.getDeviceId(), id)
    assert.equal(await api.ensureDeviceId(), id)

    // A restart keeps storage: the same id, nothing made again.
    const restarted = freshApi()
    shim.install({ baseUrl: 'http://127.0.0.1:9' }) // app.js again, storage untouched
    const from = fake.calls.length
    await restarted.request({ url: '/api/v1/accounts' })
    assert.equal(headerOf(fake.calls[from], 'X-Device'), id, 'the same device after a restart')
    assert.equal(shim.state.randomValuesCalls, 1)

    // Logging out keeps the device; clearing storage (a reinstall) is a new device.
    restarted.clearTokens()
    await restarted.request({ url: '/api/v1/accounts', auth: false })
    assert.equal(headerOf(fake.calls[fake.calls.length - 1], 'X-Device'), id)
    shim.wx.clearStorageSync()
    await restarted.request({ url: '/api/v1/accounts', auth: false })
    const other = headerOf(fake.calls[fake.calls.length - 1], 'X-Device')
    assert.match(other, /^[0-9a-f]{32}$/)
    assert.notEqual(other, id)
    assert.equal(shim.wx.getStorageSync('device_id'), other)
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('device id: a malformed stored id is replaced; pages send it through utils/api.js (the top-up POST)', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  shim.wx.setStorageSync('device_id', 'bad id!')
  freshApi()
  const fake = fakeNetwork((opts) => (opts.url.endsWith('/top-ups')
    ? { statusCode: 201, data: { id: 9, account_id: 5, direction: 'pull', amount_fen: 100, status: 'succeeded', decline_reason: null, created_at: '2026-01-01T00:00:00Z', finished_at: null, balance_fen: 100 } }
    : { statusCode: 200, data: { id: 5, number_masked: '6230********1234', account_class: 'II', status: 'active', balance_fen: 0, pending_in_fen: 0, bound_card_masked: '6222********4321', rules_version: 'r', opened_at: '2026-01-01T00:00:00Z', limits: { daily_outflow_fen: 1, daily_outflow_used_fen: 0, daily_outflow_remaining_fen: 1, yearly_outflow_fen: 1, yearly_outflow_used_fen: 0, yearly_outflow_remaining_fen: 1, balance_cap_fen: null, balance_room_fen: null } } }))
  try {
    const page = shim.loadPage('pages/account/topup/topup')
    await page.onLoad({ id: '5', mode: 'topup' })
    page.onAmountInput({ detail: { value: '1' } })
    assert.equal((await page.onSubmit()).status, 'succeeded')
    const id = shim.wx.getStorageSync('device_id')
    assert.match(id, /^[0-9a-f]{32}$/, 'the malformed one replaced')
    assert.ok(fake.calls.length >= 2)
    for (const call of fake.calls) assert.equal(headerOf(call, 'X-Device'), id, call.method + ' ' + call.url)
    assert.ok(fake.calls.some((c) => c.method === 'POST' && c.url.endsWith('/top-ups') && headerOf(c, 'Idempotency-Key')))
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('device id: without wx.getRandomValues (base library < 2.15.0) crypto.getRandomValues makes it; with no secure source none is sent', async () => {
  shim.reset()
  shim.state.sdkVersion = '2.14.0' // wx.getRandomValues fails as not supported
  const realCrypto = Object.getOwnPropertyDescriptor(globalThis, 'crypto')
  const fake = fakeNetwork(() => ({ statusCode: 200, data: {} }))
  try {
    let api = freshApi()
    await api.request({ url: '/api/v1/accounts', auth: false })
    const id = shim.wx.getStorageSync('device_id')
    assert.match(id, /^[0-9a-f]{32}$/, 'from crypto.getRandomValues')
    assert.equal(headerOf(fake.calls[0], 'X-Device'), id)

    // No secure random source at all: the request still goes, without the header (never a Math.random id).
    shim.wx.clearStorageSync()
    Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true, writable: true })
    api = freshApi()
    await api.request({ url: '/api/v1/accounts', auth: false })
    assert.equal(headerOf(fake.calls[1], 'X-Device'), undefined)
    assert.equal(shim.wx.getStorageSync('device_id'), '', 'nothing stored: the next request tries again')

    Object.defineProperty(globalThis, 'crypto', realCrypto)
    shim.state.sdkVersion = shim.declaredLibVersion()
    await api.request({ url: '/api/v1/accounts', auth: false })
    const made = shim.wx.getStorageSync('device_id')
    assert.match(made, /^[0-9a-f]{32}$/)
    assert.equal(headerOf(fake.calls[2], 'X-Device'), made)
  } finally {
    Object.defineProperty(globalThis, 'crypto', realCrypto)
    fake.restore()
    shim.reset()
  }
})
