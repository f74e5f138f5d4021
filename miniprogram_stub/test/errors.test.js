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

test('errors: account and funding codes; a card decline shows the reason the server gives', () => {
  assert.equal(errors.describe({ code: 'INSUFFICIENT_FUNDS', message: 'x' }), '账户余额不足')
  assert.match(errors.describe({ code: 'LIMIT_EXCEEDED' }), /超出账户交易限额/)
  assert.match(errors.describe({ code: 'ACCOUNT_LIMIT_REACHED' }), /已达上限/)
  assert.match(errors.describe({ code: 'IDEMPOTENCY_KEY_IN_USE' }), /处理中/)
  assert.equal(errors.describe({ code: 'CARD_DECLINED', message: '绑定银行卡余额不足' }), '绑定银行卡余额不足', 'the reason, not a generic text')
  assert.equal(errors.describe({ code: 'CARD_DECLINED', message: '' }), '绑定银行卡交易被拒绝')
  assert.equal(errors.describe({ code: 'CARD_DECLINED', message: '网络异常，请稍后再试' }), '绑定银行卡交易被拒绝', 'ApiError\'s fallback is not a reason')
  assert.equal(errors.describe({ code: 'APPLICATION_INCOMPLETE', message: '尚未完成：签署开户协议' }), '尚未完成：签署开户协议')
})

/** Answers wx.request from handler(opts) → {statusCode, data} or 'fail' (a network error); records the calls. */
function fakeNetwork(handler) {
  const real = shim.wx.request
  const calls = []
  shim.wx.request = (opts) => {
    calls.push({ method: opts.method || 'GET', url: opts.url, data: opts.data, header: Object.assign({}, opts.header) })
    const res = handler(opts)
    setImmediate(() => {
      if (res === 'fail') opts.fail && opts.fail({ errMsg: 'request:fail timeout' })
      else opts.success && opts.success(Object.assign({ header: {} }, res))
    })
    return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {} }
  }
  return { calls, restore: () => { shim.wx.request = real } }
}

const ACCOUNT = {
  id: 5, number_masked: '623099*********1234', account_class: 'II', status: 'active', balance_fen: 0, pending_in_fen: 0,
  bound_card_masked: '622202*********4321', rules_version: 'r', opened_at: '2026-01-01T00:00:00Z',
  limits: { daily_outflow_fen: 1000000, daily_outflow_used_fen: 0, daily_outflow_remaining_fen: 1000000, yearly_outflow_fen: 20000000,
    yearly_outflow_used_fen: 0, yearly_outflow_remaining_fen: 20000000, balance_cap_fen: null, balance_room_fen: null }
}

function transfer(status, amount, balance) {
  return { id: 9, account_id: 5, direction: 'pull', amount_fen: amount, status, decline_reason: null, created_at: '2026-01-01T00:00:00Z', finished_at: null, balance_fen: balance }
}

test('top-up page: one Idempotency-Key per intent, reused after a network error, a 5xx or a 202, new after a final answer', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  const answers = [
    'fail',
    apiError(503, 'CARD_NETWORK_UNAVAILABLE', '银行卡网络暂不可用，请稍后重试'),
    apiError(409, 'IDEMPOTENCY_KEY_IN_USE', '相同请求正在处理中，请稍后重试'),
    { statusCode: 202, data: transfer('pending', 1234, 0) },
    { statusCode: 201, data: transfer('succeeded', 1234, 1234) },
    apiError(422, 'CARD_DECLINED', '绑定银行卡余额不足'),
    { statusCode: 201, data: transfer('succeeded', 1234, 2468) },
    'fail',
    { statusCode: 201, data: transfer('succeeded', 500, 2968) }
  ]
  const fake = fakeNetwork((opts) => (opts.url.endsWith('/top-ups') ? answers.shift() : { statusCode: 200, data: ACCOUNT }))
  try {
    const page = shim.loadPage('pages/account/topup/topup')
    await page.onLoad({ id: '5', mode: 'topup' })
    page.onAmountInput({ detail: { value: '12.34' } })
    const keys = []
    const tap = async () => {
      const before = fake.calls.length
      const out = await page.onSubmit()
      const post = fake.calls.slice(before).find((c) => c.url.endsWith('/top-ups'))
      assert.deepEqual(post.data, { amount_fen: 1234 })
      keys.push(post.header['Idempotency-Key'])
      return out
    }
    assert.equal(await tap(), null)
    assert.equal(page.data.retrying, true)
    assert.equal(page.data.error.code, 'NETWORK_ERROR')
    assert.equal(await tap(), null)
    assert.equal(page.data.error.message, '银行卡网络暂不可用，请稍后重试')
    assert.equal(page.data.retrying, true, 'a 5xx: the outcome is not known')
    assert.equal(await tap(), null)
    assert.equal(page.data.retrying, true, 'still running on the server: retry later with the same key')
    assert.equal((await tap()).status, 'pending')
    assert.equal(page.data.retrying, true)
    assert.match(shim.render(page).text, /查询结果[\s\S]*银行处理中/)
    page.onAmountInput({ detail: { value: '99' } })
    assert.equal(page.data.amount, '12.34', 'the amount of an unresolved intent stays')
    assert.equal((await tap()).status, 'succeeded')
    assert.equal(page.data.retrying, false)
    assert.equal(new Set(keys).size, 1, 'one key for the whole intent: ' + keys.join(' '))

    page.onAmountInput({ detail: { value: '12.34' } })
    assert.equal(await tap(), null)
    assert.equal(page.data.error.message, '绑定银行卡余额不足')
    assert.equal(page.data.retrying, false, 'a decline is final')
    assert.equal((await tap()).status, 'succeeded')
    assert.equal(new Set(keys).size, 3, 'a new key after each final answer')
    assert.notEqual(keys[5], keys[4])
    assert.notEqual(keys[6], keys[5])

    // After a network error the user may give up on the unresolved intent (重新填写): the next one has a new key.
    page.onAmountInput({ detail: { value: '5' } })
    const before = fake.calls.length
    assert.equal(await page.onSubmit(), null)
    const lostKey = fake.calls.slice(before).find((c) => c.url.endsWith('/top-ups')).header['Idempotency-Key']
    page.onResetIntent()
    assert.equal(page.data.retrying, false)
    const from = fake.calls.length
    assert.equal((await page.onSubmit()).status, 'succeeded')
    assert.notEqual(fake.calls.slice(from).find((c) => c.url.endsWith('/top-ups')).header['Idempotency-Key'], lostKey)
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})

const HELD = '该笔交易需要人工审核，审核通过后自动到账，结果将通知您'

test('errors: risk control — RISK_BLOCKED / RISK_REVIEW show the server\'s message; the held text names no rule', () => {
  assert.equal(errors.describe({ code: 'RISK_BLOCKED', message: '交易存在风险，已被拒绝' }), '交易存在风险，已被拒绝')
  assert.equal(errors.describe({ code: 'RISK_REVIEW', message: '交易需人工审核，暂未处理' }), '交易需人工审核，暂未处理')
  assert.equal(errors.describe({ code: 'RISK_BLOCKED', message: '' }), '交易存在风险，已被拒绝', 'a fixed text only when the server gives none')
  assert.equal(errors.describe({ code: 'RISK_REVIEW', message: '网络异常，请稍后再试' }), '交易需人工审核，暂未处理')
  assert.ok(!errors.MESSAGES.RISK_BLOCKED && !errors.MESSAGES.RISK_REVIEW, 'never a fixed text over the server\'s')
  assert.equal(errors.TRANSFER_HELD, HELD)
  assert.doesNotMatch(errors.TRANSFER_HELD, /[A-Za-z]/, 'plain Chinese: no rule id, no code')
})

/** A transfer answered 202 held: the page says it waits for review, and the intent is over (no 查询结果 / 重试). */
async function heldFlow(mode) {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  const suffix = mode === 'withdraw' ? '/withdrawals' : '/top-ups'
  const funded = Object.assign({}, ACCOUNT, { balance_fen: 10000 })
  const held = Object.assign(transfer('held', 10000, mode === 'withdraw' ? 0 : 10000), { direction: mode === 'withdraw' ? 'push' : 'pull' })
  const answers = [
    { statusCode: 202, data: held },
    { statusCode: 201, data: transfer('succeeded', 100, mode === 'withdraw' ? 9900 : 10100) }
  ]
  const fake = fakeNetwork((opts) => (opts.url.endsWith(suffix) ? answers.shift() : { statusCode: 200, data: funded }))
  try {
    const page = shim.loadPage('pages/account/topup/topup')
    await page.onLoad({ id: '5', mode })
    page.onAmountInput({ detail: { value: '100' } })
    let from = fake.calls.length
    const out = await page.onSubmit()
    assert.equal(out.status, 'held')
    const posts = () => fake.calls.slice(from).filter((c) => c.url.endsWith(suffix))
    const [first] = posts()
    assert.deepEqual(first.data, { amount_fen: 10000 })
    assert.ok(fake.calls.slice(from).some((c) => c.method === 'GET' && c.url.endsWith('/api/v1/accounts/5')), 'the account read again (在途 / balance)')
    assert.equal(page.data.retrying, false, 'held is the server\'s answer, not an unknown outcome')
    assert.equal(page.data.error, null)
    assert.equal(page.data.amount, '', 'the form is cleared')
    assert.deepEqual([page.data.result.held, page.data.result.pending, page.data.result.title, page.data.result.note], [true, false, '等待人工审核', HELD])
    assert.equal(shim.lastToast().title, '已提交，等待人工审核')
    const action = mode === 'withdraw' ? '提现' : '充值'
    const view = shim.render(page)
    assertShowsHeld(view.text, action)
    assert.doesNotMatch(view.text, /new-device|card-testing|RISK|held/i, 'no rule name, no code')
    const [button] = view.select('button.primary')
    assert.notEqual(button.attrs.disabled, true, 'the form is ready for a new ' + action)
    assert.ok(view.text.includes('确认' + action) && !view.text.includes('查询结果') && !view.text.includes('重新填写'))

    // Typed again: a new intent (a new key), not a retry of the held one.
    page.onAmountInput({ detail: { value: '1' } })
    from = fake.calls.length
    assert.equal((await page.onSubmit()).status, 'succeeded')
    const [next] = posts()
    assert.notEqual(next.header['Idempotency-Key'], first.header['Idempotency-Key'])
    assert.equal(page.data.result.held, false)
    assert.ok(!shim.render(page).text.includes(HELD))
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
}

function assertShowsHeld(text, action) {
  assert.ok(text.includes('等待人工审核\n' + HELD + '\n' + action + '金额\n¥100.00'), text)
}

test('top-up page: a top-up held for review (202 held) says so plainly and is not retried as pending', () => heldFlow('topup'))

test('withdrawal (the same page, mode=withdraw): a held withdrawal says so plainly and is not retried as pending', () => heldFlow('withdraw'))

test('top-up page: RISK_BLOCKED (403) and RISK_REVIEW show the server\'s message and end the intent', async () => {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
  const answers = [
    apiError(403, 'RISK_BLOCKED', '交易存在风险，已被拒绝'),
    apiError(403, 'RISK_REVIEW', '交易需人工审核，暂未处理'),
    { statusCode: 201, data: transfer('succeeded', 500, 500) }
  ]
  const fake = fakeNetwork((opts) => (opts.url.endsWith('/withdrawals') ? answers.shift() : { statusCode: 200, data: ACCOUNT }))
  try {
    const page = shim.loadPage('pages/account/topup/topup')
    await page.onLoad({ id: '5', mode: 'withdraw' })
    page.onAmountInput({ detail: { value: '5' } })
    const keys = []
    for (const [code, message] of [['RISK_BLOCKED', '交易存在风险，已被拒绝'], ['RISK_REVIEW', '交易需人工审核，暂未处理']]) {
      const before = fake.calls.length
      assert.equal(await page.onSubmit(), null)
      keys.push(fake.calls.slice(before).find((c) => c.url.endsWith('/withdrawals')).header['Idempotency-Key'])
      assert.deepEqual(page.data.error, { code, message, field: null })
      assert.equal(shim.lastToast().title, message)
      assert.equal(page.data.retrying, false, code + ' is final')
      assert.equal(page.data.amount, '5', 'the amount stays for the user to see')
      const text = shim.render(page).text
      assert.ok(text.includes(message) && text.includes('确认提现') && !text.includes('重试'), text)
    }
    const before = fake.calls.length
    assert.equal((await page.onSubmit()).status, 'succeeded')
    keys.push(fake.calls.slice(before).find((c) => c.url.endsWith('/withdrawals')).header['Idempotency-Key'])
    assert.equal(new Set(keys).size, 3, 'a new key after each final answer')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('errors: vehicle and ETC binding codes; unbinding refused for arrears shows the server\'s message (the amount owed)', () => {
  assert.equal(errors.describe({ code: 'PLATE_INVALID', message: 'x' }), '车牌号码格式不正确，请核对')
  assert.match(errors.describe({ code: 'PLATE_COLOR_MISMATCH' }), /渐变绿或黄绿双拼/)
  assert.match(errors.describe({ code: 'VEHICLE_BOUND' }), /请先解除绑定/)
  assert.match(errors.describe({ code: 'VEHICLE_LIMIT_REACHED' }), /已达上限/)
  assert.equal(errors.describe({ code: 'ETC_CARD_INVALID' }), 'ETC 卡号应为 20 位数字，请核对')
  assert.match(errors.describe({ code: 'ALREADY_BOUND' }), /不能重复绑定/)
  assert.match(errors.describe({ code: 'ACCOUNT_NOT_ELIGIBLE' }), /Ⅱ类户/)
  assert.equal(errors.describe({ code: 'AUTHORISATION_NOT_SIGNED' }), '请先签署 ETC 自动扣款授权书')
  assert.equal(errors.describe({ code: 'ARREARS_OUTSTANDING', message: '尚有欠费 ¥200.00 未补缴，补缴后才能解绑' }), '尚有欠费 ¥200.00 未补缴，补缴后才能解绑')
  assert.equal(errors.describe({ code: 'ARREARS_OUTSTANDING', message: '网络异常，请稍后再试' }), '尚有欠费未补缴，补缴后才能解除绑定')
})
