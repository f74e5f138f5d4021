/**
 * The closing page (pages/account/close/close) against scripted answers, without a backend: what blocks
 * closing is listed and nothing is sent; a 202 keeps the Idempotency-Key and the verify_id for the retry.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const shim = require('./wx-shim')

shim.install({ baseUrl: 'http://127.0.0.1:9' })
const face = require('../utils/face')

const LIMITS = {
  daily_outflow_fen: 1000000, daily_outflow_used_fen: 0, daily_outflow_remaining_fen: 1000000, yearly_outflow_fen: 20000000,
  yearly_outflow_used_fen: 0, yearly_outflow_remaining_fen: 20000000, balance_cap_fen: null, balance_room_fen: null
}

function account(status, overrides) {
  return Object.assign({
    id: 3, number_masked: '6230 **** **** 1234', account_class: 'II', status, restrictions: [], balance_fen: status === 'active' ? 5000 : 0,
    pending_in_fen: 0, bound_card_masked: '622202******0000', rules_version: '2026.11-1', opened_at: '2026-11-30T01:00:00Z',
    closed_at: status === 'closed' ? '2026-12-01T01:00:00Z' : null, limits: LIMITS
  }, overrides || {})
}

function fake(handler) {
  const real = shim.wx.request
  const calls = []
  shim.wx.request = (opts) => {
    const method = String(opts.method || 'GET').toUpperCase()
    const path = new URL(opts.url).pathname
    calls.push({ method, path, data: opts.data, key: (opts.header || {})['Idempotency-Key'] || null })
    const res = handler(method, path, calls.filter((c) => c.method === method && c.path === path).length)
    setImmediate(() => opts.success && opts.success(Object.assign({ header: {} }, res)))
    return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {} }
  }
  return { calls, posts: () => calls.filter((c) => c.method === 'POST'), restore: () => { shim.wx.request = real } }
}

function start() {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
}

test('bindings not unbound and arrears are listed, and closing is not sent', async () => {
  start()
  const net = fake((method, path) => {
    if (path === '/api/v1/etc-bindings') {
      return { statusCode: 200, data: { bindings: [{ id: 9, account_id: 3, status: 'active', plate_number: '粤BD12345', arrears_fen: 0 },
        { id: 8, account_id: 3, status: 'unbound', plate_number: '粤B00001', arrears_fen: 1234 },
        { id: 7, account_id: 4, status: 'active', plate_number: '粤B99999', arrears_fen: 0 }] } }
    }
    return { statusCode: 200, data: account('active') }
  })
  try {
    const page = shim.loadPage('pages/account/close/close')
    await page.onLoad({ id: '3' })
    const text = shim.render(page).text
    assert.match(text, /暂不能销户/)
    assert.match(text, /1 个 ETC 绑定未解除（粤BD12345）/)
    assert.match(text, /尚有欠费 ¥12\.34 未补缴/)
    await page.onSubmit()
    assert.deepEqual(net.posts(), [])
  } finally {
    net.restore()
  }
})

test('a 202 keeps the key and the face verification; the retry shows the account closed', async () => {
  start()
  const realVerify = face.verifyFace
  const realSupported = face.isSupported
  let verified = 0
  face.isSupported = () => true
  face.verifyFace = () => { verified += 1; return Promise.resolve({ verifyId: 'v-' + verified, result: { passed: true } }) }
  const net = fake((method, path, n) => {
    if (path === '/api/v1/etc-bindings') return { statusCode: 200, data: { bindings: [] } }
    if (method === 'POST') {
      const payout = { id: 5, account_id: 3, direction: 'push', purpose: 'closing', amount_fen: 5000, decline_reason: null,
        created_at: '2026-12-01T01:00:00Z', finished_at: null, balance_fen: 0 }
      return n === 1
        ? { statusCode: 202, data: { account: account('closing'), payout: Object.assign(payout, { status: 'pending' }) } }
        : { statusCode: 200, data: { account: account('closed'), payout: Object.assign(payout, { status: 'succeeded' }) } }
    }
    return { statusCode: 200, data: account('active') }
  })
  try {
    const page = shim.loadPage('pages/account/close/close')
    await page.onLoad({ id: '3' })
    await page.onSubmit()
    assert.match(shim.render(page).text, /销户处理中/)
    assert.match(shim.render(page).text, /查询结果/)
    await page.onSubmit()
    const posts = net.posts()
    assert.equal(posts.length, 2)
    assert.equal(posts[0].path, '/api/v1/accounts/3/close')
    assert.ok(posts[0].key)
    assert.equal(posts[1].key, posts[0].key, 'the retry keeps the Idempotency-Key')
    assert.deepEqual(posts.map((p) => p.data.verify_id), ['v-1', 'v-1'], 'and the same body')
    assert.equal(verified, 1, 'one face check for the one intent')
    const text = shim.render(page).text
    assert.match(text, /账户已销户/)
    assert.match(text, /¥50\.00/)
    assert.match(text, /开立新账户/)
  } finally {
    face.verifyFace = realVerify
    face.isSupported = realSupported
    net.restore()
  }
})

test('an unreachable card network ends the intent (nothing was sent, the face check is spent)', () => {
  const page = require('../pages/account/close/close')
  assert.equal(page.isRetryable({ status: 503, code: 'CARD_NETWORK_UNAVAILABLE' }), false)
  assert.equal(page.isRetryable({ status: 503, code: 'SERVICE_UNAVAILABLE' }), true)
  assert.equal(page.isRetryable({ status: 0, code: 'NETWORK_ERROR' }), true)
  assert.equal(page.isRetryable({ status: 409, code: 'TRANSFER_PENDING' }), false)
})
