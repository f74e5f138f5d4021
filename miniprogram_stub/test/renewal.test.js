/**
 * An expired ID card (ID_EXPIRED) on the account page → 更新身份证 → the ID card page in renewal mode (renew=1: its
 * texts, the ID-expiry subscription asked on the tap, the renewal's error texts) → the face page in renewal mode →
 * back to the account; and the loss report asking for its notice's subscription on the tap. Without a backend:
 * wx.request is answered here.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const shim = require('./wx-shim')

shim.install({ baseUrl: 'http://127.0.0.1:9' })
const errors = require('../utils/errors')
const subscribe = require('../utils/subscribe')

/** Answers wx.request from handler(method, path, opts) → {statusCode, data}; records the calls. */
function fakeNetwork(handler) {
  const real = shim.wx.request
  const calls = []
  shim.wx.request = (opts) => {
    const method = String(opts.method || 'GET').toUpperCase()
    calls.push({ method, path: new URL(opts.url).pathname, data: opts.data })
    const res = handler(method, new URL(opts.url).pathname, opts)
    setImmediate(() => opts.success && opts.success(Object.assign({ header: {} }, res)))
    return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {} }
  }
  return { calls, restore: () => { shim.wx.request = real } }
}

function apiError(statusCode, code, message, field) {
  return { statusCode, data: { error: { code, message, field: field || null } } }
}

const ok = (data) => ({ statusCode: 200, data })
const LIMITS = {
  daily_outflow_fen: 1000000, daily_outflow_used_fen: 0, daily_outflow_remaining_fen: 1000000, yearly_outflow_fen: 20000000,
  yearly_outflow_used_fen: 0, yearly_outflow_remaining_fen: 20000000, balance_cap_fen: null, balance_room_fen: null
}
const EXPIRED = {
  id: 3, number_masked: '623099*********1234', account_class: 'II', status: 'restricted', balance_fen: 15000, pending_in_fen: 0,
  bound_card_masked: '622202*********4321', rules_version: 'r', opened_at: '2026-11-30T00:00:00Z', limits: LIMITS,
  restrictions: [{ code: 'ID_EXPIRED', since: '2026-12-08T16:00:00Z', by: 'system', held_fen: null }]
}
const ACTIVE = Object.assign({}, EXPIRED, { status: 'active', restrictions: [] })

function start() {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  shim.state.subscribeAnswer = 'reject' // no emulator here: the user declines, and the request goes anyway
}

test('account page: ID_EXPIRED says so and offers 更新身份证, which opens the ID card page in renewal mode', async () => {
  start()
  const fake = fakeNetwork(() => ok(EXPIRED))
  try {
    const page = shim.loadPage('pages/account/account')
    await page.onLoad({ id: '3' })
    const text = shim.render(page).text
    assert.match(text, /账户身份证件已过期：暂不能转出资金，转入不受影响/)
    assert.match(text, /您的身份证已过期/)
    await shim.tap(page, '更新身份证')
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/identity/idcard/idcard?renew=1&account_id=3' })
    // an account without it has no such button
    const fine = fakeNetwork(() => ok(ACTIVE))
    try {
      const other = shim.loadPage('pages/account/account')
      await other.onLoad({ id: '3' })
      assert.doesNotMatch(shim.render(other).text, /更新身份证/)
    } finally {
      fine.restore()
    }
    assert.equal(fake.calls[0].path, '/api/v1/accounts/3')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('ID card page, renewal: its texts, the ID-expiry subscription asked on the tap, the renewal\'s error texts, then face', async () => {
  start()
  const answers = []
  const fake = fakeNetwork(() => answers.shift())
  try {
    const page = shim.loadPage('pages/identity/idcard/idcard')
    page.onLoad({ renew: '1', account_id: '3' })
    assert.equal(page.data.renew, true)
    assert.match(shim.render(page).text, /更新身份证[\s\S]*请拍摄本人新领取的身份证（姓名、号码与开户时一致）/)
    page.setData({ frontUploadId: 11, backUploadId: 12, name: '李明光', idNumber: '11010519491231002X' })
    const submit = async (answer) => {
      answers.push(answer)
      const asked = shim.state.subscriptions.length
      const out = await shim.tap(page, '提交核验')
      const [asking] = shim.state.subscriptions.slice(asked)
      assert.deepEqual(asking.tmplIds, [subscribe.TEMPLATES.idExpiry], 'the ID-expiry template, asked in the tap')
      assert.equal(asking.errMsg, 'requestSubscribeMessage:ok')
      const post = fake.calls.pop()
      assert.deepEqual([post.method, post.path], ['POST', '/api/v1/identity/id-card'])
      assert.deepEqual(post.data, { front_upload_id: 11, back_upload_id: 12, name: '李明光', id_number: '11010519491231002X' })
      return out
    }
    assert.equal(await submit(apiError(422, 'ID_EXPIRED', '身份证已过期')), null)
    assert.equal(page.data.error.message, '这张身份证也已过期，请拍摄本人新领取的、有效期内的身份证')
    assert.equal(await submit(apiError(409, 'IDENTITY_NAME_CHANGED', 'x', 'name')), null)
    assert.deepEqual(page.data.error, { code: 'IDENTITY_NAME_CHANGED', message: errors.MESSAGES.IDENTITY_NAME_CHANGED, field: 'name' })
    assert.match(shim.render(page).text, /如已更名，请到营业网点办理/)
    assert.equal(await submit(apiError(409, 'IDENTITY_FIXED', 'x', 'id_number')), null)
    assert.equal(page.data.error.message, '请拍摄本人的新身份证：号码须与开户时一致')
    const body = await submit(ok({ verified: true, name: '李*光', id_number: '110***********002X', valid_until: '2046-01-01' }))
    assert.equal(body.verified, true)
    assert.match(shim.render(page).text, /新身份证已登记；完成人脸核身后账户恢复正常。/)
    await shim.tap(page, '下一步：人脸核身')
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/identity/face/face?renew=1&account_id=3' })
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('ID card page, opening (no renew): no subscription asked, the plain texts', async () => {
  start()
  const fake = fakeNetwork(() => apiError(422, 'ID_EXPIRED', '身份证已过期'))
  try {
    const page = shim.loadPage('pages/identity/idcard/idcard')
    page.onLoad({})
    assert.doesNotMatch(shim.render(page).text, /更新身份证/)
    page.setData({ frontUploadId: 11, backUploadId: 12, name: '李明光', idNumber: '11010519491231002X' })
    await shim.tap(page, '提交核验')
    assert.equal(shim.state.subscriptions.length, 0)
    assert.equal(page.data.error.message, errors.MESSAGES.ID_EXPIRED)
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('face page, renewal: after a pass it goes back to the account (the restriction lifted there), not to the bank card', async () => {
  start()
  const fake = fakeNetwork((method, path) => {
    if (path === '/api/v1/identity/face') return { statusCode: 201, data: { verify_id: 'v-1', expires_in: 3600 } }
    return ok({ verify_id: 'v-1', status: 'passed', passed: true, verify_ret: 10000, valid_until: '2026-12-09T00:05:00Z' })
  })
  try {
    const page = shim.loadPage('pages/identity/face/face')
    page.onLoad({ renew: '1', account_id: '3' })
    assert.match(shim.render(page).text, /核身通过后，账户的“身份证已过期”限制即解除/)
    const result = await shim.tap(page, '开始人脸核身')
    assert.equal(result.passed, true)
    const text = shim.render(page).text
    assert.doesNotMatch(text, /下一步：验证银行卡/)
    await shim.tap(page, '返回我的账户')
    assert.deepEqual(shim.state.navigations.pop(), { type: 'reLaunch', url: '/pages/account/account?id=3' })
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('account page: 挂失账户 asks for the loss-report notice\'s subscription on the tap, then reports', async () => {
  start()
  const reported = Object.assign({}, ACTIVE, {
    status: 'restricted', restrictions: [{ code: 'LOSS_REPORTED', since: '2026-12-08T01:00:00Z', by: 'holder', held_fen: null }]
  })
  const fake = fakeNetwork((method) => (method === 'POST' ? { statusCode: 201, data: reported } : ok(ACTIVE)))
  try {
    const page = shim.loadPage('pages/account/account')
    await page.onLoad({ id: '3' })
    await shim.tap(page, '挂失账户')
    assert.deepEqual(shim.state.subscriptions.map((s) => s.tmplIds), [[subscribe.TEMPLATES.lossReported]])
    assert.deepEqual(fake.calls.map((c) => c.method + ' ' + c.path), ['GET /api/v1/accounts/3', 'POST /api/v1/accounts/3/loss-report'])
    assert.equal(page.data.account.lossReported, true)
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})
