/**
 * pages/account/bankcard (更换绑定银行卡) without a backend: wx.request is answered here, and the user's face
 * verification in WeChat (wx.requestFacialVerify) succeeds at once.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const shim = require('./wx-shim')

shim.install({ baseUrl: 'http://127.0.0.1:9' })

const OLD = '622202******1234'
const NEW = '622202******5678'
const NEW_CARD = '6222020000000005678'
const PHONE = '13800138000'

function account(extra) {
  return Object.assign({
    id: 7, number_masked: '623099******0001', account_class: 'II', status: 'active', restrictions: [],
    balance_fen: 1000, pending_in_fen: 0, bound_card_masked: OLD, rules_version: 'v1',
    opened_at: '2026-12-01T08:00:00Z',
    limits: { daily_outflow_fen: 1000000, daily_outflow_used_fen: 0, daily_outflow_remaining_fen: 1000000,
      yearly_outflow_fen: 20000000, yearly_outflow_used_fen: 0, yearly_outflow_remaining_fen: 20000000,
      balance_cap_fen: null, balance_room_fen: null }
  }, extra || {})
}

/** Answers wx.request with handler(opts) → {statusCode, data}; records the calls; WeChat's face check passes. */
function fakeNetwork(handler) {
  const realRequest = shim.wx.requestFacialVerify
  const real = shim.wx.request
  const calls = []
  shim.wx.request = (opts) => {
    calls.push({ method: opts.method || 'GET', path: new URL(opts.url).pathname, data: opts.data })
    const res = handler(opts)
    setImmediate(() => opts.success && opts.success(Object.assign({ header: {} }, res)))
    return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {} }
  }
  shim.wx.requestFacialVerify = (opts) => setImmediate(() => opts.success({ errCode: 0, errMsg: 'requestFacialVerify:ok' }))
  return { calls, restore: () => { shim.wx.request = real; shim.wx.requestFacialVerify = realRequest } }
}

function backend(boundCardAnswer, current) {
  return (opts) => {
    const path = new URL(opts.url).pathname
    if (path === '/api/v1/identity/face') return { statusCode: 201, data: { verify_id: 'v-1', expires_in: 3600 } }
    if (path === '/api/v1/identity/face/v-1/result') {
      return { statusCode: 200, data: { verify_id: 'v-1', status: 'passed', passed: true, verify_ret: 10000, valid_until: null } }
    }
    if (path === '/api/v1/accounts/7/bound-card') return boundCardAnswer
    if (path === '/api/v1/accounts/7') return { statusCode: 200, data: current || account() }
    return { statusCode: 404, data: { error: { code: 'NOT_FOUND', message: 'no' } } }
  }
}

async function filledPage() {
  const page = shim.loadPage('pages/account/bankcard/bankcard')
  await page.onLoad({ id: '7' })
  page.onCardInput({ detail: { value: '6222 0200 0000 0005 678' } })
  page.onPhoneInput({ detail: { value: PHONE } })
  return page
}

test('bankcard page: a face check, then the new card is bound and shown masked', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  const fake = fakeNetwork(backend({ statusCode: 200, data: account({ bound_card_masked: NEW }) }))
  try {
    const page = await filledPage()
    assert.match(shim.render(page).text, new RegExp('现绑定银行卡\\s*' + OLD.replace(/\*/g, '\\*')))
    assert.equal(page.data.cardNumber, NEW_CARD, 'spaces are dropped as typed')
    const answered = await page.onSubmit()
    assert.equal(answered.bound_card_masked, NEW)
    assert.deepEqual(fake.calls.map((c) => c.method + ' ' + c.path), [
      'GET /api/v1/accounts/7', 'POST /api/v1/identity/face', 'POST /api/v1/identity/face/v-1/result',
      'POST /api/v1/accounts/7/bound-card'])
    assert.deepEqual(fake.calls[3].data, { card_number: NEW_CARD, reserved_phone: PHONE, verify_id: 'v-1' })
    assert.equal(page.data.done, true)
    assert.equal(page.data.account.boundCard, NEW)
    assert.equal(shim.lastToast().title, '绑定银行卡已更换')
    const text = shim.render(page).text
    assert.ok(text.includes('新绑定银行卡') && text.includes(NEW), text)
    assert.ok(!text.includes(NEW_CARD), 'the full number is not shown')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
  }
})

test('bankcard page: a card that fails the same-name check says so and the old card stays', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  const mismatch = { statusCode: 422, data: { error: { code: 'CARD_MISMATCH', message: 'server text', field: null } } }
  const fake = fakeNetwork(backend(mismatch))
  try {
    const page = await filledPage()
    assert.equal(await page.onSubmit(), null)
    assert.equal(page.data.error.message, '银行卡信息与本人身份信息不一致')
    assert.equal(page.data.done, false)
    assert.equal(page.data.submitting, false)
    assert.equal(page.data.account.boundCard, OLD)
    assert.ok(shim.render(page).text.includes('现绑定银行卡'))
  } finally {
    fake.restore()
  }
})

test('bankcard page: each refusal of the backend has its own text', async () => {
  const cases = {
    CARD_ALREADY_BOUND: '该银行卡已是本账户的绑定银行卡，请填写另一张卡',
    TRANSFER_PENDING: '账户有处理中的充值或提现，请待其完成后再试',
    ACCOUNT_RESTRICTED: '账户已挂失或被冻结，暂不能更换绑定银行卡',
    CARD_NOT_FOUND: '未查询到该银行卡，请核对卡号'
  }
  for (const [code, text] of Object.entries(cases)) {
    shim.reset()
    shim.wx.setStorageSync('access_token', 'token')
    const fake = fakeNetwork(backend({ statusCode: 409, data: { error: { code, message: 'server text' } } }))
    try {
      const page = await filledPage()
      assert.equal(await page.onSubmit(), null)
      assert.equal(page.data.error.message, text, code)
    } finally {
      fake.restore()
    }
  }
})

test('bankcard page: a restricted or closed account cannot change its card, and nothing is sent', async () => {
  for (const [current, said] of [
    [account({ status: 'restricted', restrictions: [{ code: 'LOSS_REPORTED', since: '2026-12-01T08:00:00Z', by: 'holder' }] }),
      '账户已挂失或被冻结，暂不能更换绑定银行卡'],
    [account({ status: 'restricted', restrictions: [{ code: 'ID_EXPIRED', since: '2026-12-01T08:00:00Z', by: 'system' }] }),
      '身份证件已过期，请先更新身份证后再更换绑定银行卡'],
    [account({ status: 'closed' }), '该账户已销户或正在销户'], [account({ status: 'closing' }), '该账户已销户或正在销户']]) {
    shim.reset()
    shim.wx.setStorageSync('access_token', 'token')
    const fake = fakeNetwork(backend({ statusCode: 500, data: {} }, current))
    try {
      const page = await filledPage()
      assert.equal(page.data.blocked, said)
      assert.equal(await page.onSubmit(), null)
      assert.deepEqual(fake.calls.map((c) => c.path), ['/api/v1/accounts/7'])
      const view = shim.render(page)
      assert.ok(view.text.includes(said) && !view.text.includes('人脸核验并更换'), view.text)
    } finally {
      fake.restore()
    }
  }
})

test('bankcard page: a malformed card number or phone is refused before any request', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  const fake = fakeNetwork(backend({ statusCode: 500, data: {} }))
  try {
    const page = await filledPage()
    page.onCardInput({ detail: { value: '1234' } })
    assert.equal(await page.onSubmit(), null)
    assert.equal(page.data.error.message, '请输入正确的银行卡号')
    page.onCardInput({ detail: { value: NEW_CARD } })
    page.onPhoneInput({ detail: { value: '2380013800' } })
    assert.equal(await page.onSubmit(), null)
    assert.equal(page.data.error.message, '请输入银行预留的11位手机号')
    assert.deepEqual(fake.calls.map((c) => c.path), ['/api/v1/accounts/7'])
  } finally {
    fake.restore()
  }
})

test('account page: 更换绑定银行卡 opens the page for this account', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  const fake = fakeNetwork(backend({ statusCode: 500, data: {} }))
  try {
    const page = shim.loadPage('pages/account/account')
    await page.onLoad({ id: '7' })
    await shim.tap(page, '更换绑定银行卡')
    assert.equal(shim.state.navigations[shim.state.navigations.length - 1].url, '/pages/account/bankcard/bankcard?id=7')
  } finally {
    fake.restore()
  }
})
