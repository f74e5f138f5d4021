/**
 * utils/etc.js (plates, colours, ETC card numbers, the binding and debit view models) and the vehicle / ETC pages'
 * error texts, without a backend: wx.request is answered here.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const shim = require('./wx-shim')

shim.install({ baseUrl: 'http://127.0.0.1:9' })
const etc = require('../utils/etc')
const errors = require('../utils/errors')

// ---------- utils/etc.js ----------

test('etc: a typed plate is normalised: spaces and middle dots removed, ASCII letters upper-cased', () => {
  assert.equal(etc.normalisePlate('粤b d12345'), '粤BD12345')
  assert.equal(etc.normalisePlate(' 京A·12345 '), '京A12345')
  assert.equal(etc.normalisePlate('沪a\u3000d•1234５'), '沪AD1234５', 'a full-width space goes; other characters stay as typed')
  assert.equal(etc.normalisePlate('粤z1234港'), '粤Z1234港')
  assert.equal(etc.normalisePlate(null), '')
  assert.equal(etc.normalisePlate(undefined), '')
})

test('etc: plates per GA 36-2018 (the backend\'s PLATE_RE)', () => {
  for (const ok of ['京A12345', '沪AD12345', '沪AFA1234', '粤B12345D', '粤B12345F', '粤Z1234港', '京A1234学', '京A1234警', '使123456', '京AHJ8NP']) {
    assert.equal(etc.plateOk(ok), true, ok)
  }
  for (const bad of ['', '京A1234', '京A123456', '京AI2345', '京O12345', 'A京12345', '京A 12345', '京a12345', '粤BD123456', '粤B1234DX',
    '沪AD1A345', '粤B1234AD', '港A12345', '使12345',
    // JS's $ (no m flag) is the end of the text; Python's re.match with $ also matches before a final newline, so
    // the backend's PLATE_RE takes '京A12345\n' (reported). The page strips whitespace before checking anyway.
    '京A12345\n']) {
    assert.equal(etc.plateOk(bad), false, JSON.stringify(bad))
  }
})

test('etc: the default colour follows the plate; a colour fits as the backend says (plate_color_fits)', () => {
  assert.equal(etc.suggestColor('粤BD12345'), 'gradient_green', 'small new-energy car')
  assert.equal(etc.suggestColor('粤BFA1234'), 'gradient_green')
  assert.equal(etc.suggestColor('粤B12345D'), 'yellow_green', 'large new-energy vehicle')
  assert.equal(etc.suggestColor('京A12345'), 'blue')
  assert.equal(etc.suggestColor('京A1234学'), 'yellow')
  assert.equal(etc.suggestColor('京A1234挂'), 'yellow')
  assert.equal(etc.suggestColor('京A1234警'), 'white')
  assert.equal(etc.suggestColor('粤Z1234港'), 'black')
  assert.equal(etc.suggestColor('使123456'), 'black')
  assert.equal(etc.suggestColor(''), 'blue')
  assert.equal(etc.colorFits('粤BD12345', 'gradient_green'), true)
  assert.equal(etc.colorFits('粤BD12345', 'yellow_green'), false)
  assert.equal(etc.colorFits('粤B12345D', 'yellow_green'), true)
  assert.equal(etc.colorFits('粤B12345D', 'gradient_green'), false)
  assert.equal(etc.colorFits('京A12345', 'yellow'), true)
  assert.equal(etc.colorFits('京A12345', 'gradient_green'), false, 'no other plate is green')
  assert.equal(etc.plateProblem('', 'blue'), 'PLATE_REQUIRED')
  assert.equal(etc.plateProblem('京AI2345', 'blue'), 'PLATE_INVALID')
  assert.equal(etc.plateProblem('粤BD12345', 'blue'), 'PLATE_COLOR_MISMATCH')
  assert.equal(etc.plateProblem('京A12345', 'green'), 'PLATE_COLOR_MISMATCH', 'an unknown colour')
  assert.equal(etc.plateProblem('粤BD12345', 'gradient_green'), null)
  assert.deepEqual(etc.COLORS.map((c) => c.label), ['蓝', '黄', '黑', '白', '渐变绿', '黄绿双拼'])
})

test('etc: an ETC card number is 20 digits; what the user types keeps only the digits', () => {
  assert.equal(etc.normaliseCard('1101 2345 6789 0123 4567'), '11012345678901234567')
  assert.equal(etc.normaliseCard('1101-2345'), '11012345')
  assert.equal(etc.cardOk('11012345678901234567'), true)
  assert.equal(etc.cardOk('1101234567890123456'), false)
  assert.equal(etc.cardOk('110123456789012345678'), false)
  assert.equal(etc.cardOk('1101234567890123456a'), false)
  assert.equal(etc.cardOk(11012345678901234567), false, 'a number is not a card number')
})

const BINDING = {
  id: 9, status: 'active', vehicle_id: 4, account_id: 3, card_number_masked: '110123**********4567', obu_id: null,
  plate_number: '粤BD12345', plate_color: 'gradient_green', arrears_fen: 20000, authorisation_contract_id: 12,
  created_at: '2026-11-30T01:00:00Z', expires_at: null, activated_at: '2026-11-30T01:01:00Z', suspended_at: null, unbound_at: null
}

function debit(overrides) {
  return Object.assign({
    out_trade_no: 'ETC0001', category: 'toll', status: 'succeeded', amount_fen: 3500, refunded_fen: 0, merchant: '京港澳高速杜家坎站',
    occurred_at: '2026-11-30T08:00:00+08:00', booked_at: '2026-11-30T00:00:01Z', refusal_code: null
  }, overrides || {})
}

test('etc: the binding and debit view models (yuan from utils/money.js, Chinese labels)', () => {
  const b = etc.viewBinding(BINDING)
  assert.equal(b.statusText, '已开通')
  assert.equal(b.active, true)
  assert.equal(b.colorLabel, '渐变绿')
  assert.equal(b.arrears, '¥200.00')
  assert.equal(b.hasArrears, true)
  assert.equal(b.arrearsNote, '欠费 ¥200.00')
  assert.equal(b.contractId, 12)
  assert.equal(etc.viewBinding(Object.assign({}, BINDING, { arrears_fen: 0, status: 'pending' })).arrears, '¥0.00')
  assert.deepEqual(['pending', 'active', 'suspended', 'unbound'].map((s) => etc.viewBinding(Object.assign({}, BINDING, { status: s })).statusText),
    ['待开通', '已开通', '已暂停', '已解绑'])
  assert.equal(etc.viewBinding(null), null)

  assert.deepEqual(['toll', 'parking', 'fuel', 'carwash'].map((c) => etc.viewDebit(debit({ category: c })).categoryLabel), ['通行费', '停车费', '加油', '洗车'])
  assert.deepEqual(['succeeded', 'arrears', 'settled'].map((s) => etc.viewDebit(debit({ status: s })).statusText), ['已扣款', '欠费', '已补缴'])
  const d = etc.viewDebit(debit({ status: 'arrears', amount_fen: 123456, refusal_code: 'INSUFFICIENT_FUNDS' }))
  assert.equal(d.amount, '¥1,234.56')
  assert.equal(d.arrears, true)
  assert.equal(d.refusal, '账户余额不足')
  assert.equal(etc.viewDebit(debit({ refusal_code: 'LIMIT_EXCEEDED' })).refusal, errors.MESSAGES.LIMIT_EXCEEDED)
  assert.equal(etc.viewDebit(debit({ refunded_fen: 500 })).refunded, '¥5.00')
  assert.equal(etc.viewDebit(debit()).refunded, '')
})

// ---------- the pages against scripted answers ----------

/** Answers wx.request from handler(opts) → {statusCode, data}; records the calls. */
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
const VEHICLE = { id: 4, plate_number: '粤BD12345', plate_color: 'gradient_green', created_at: '2026-11-30T01:00:00Z' }
const ACCOUNT = {
  id: 3, number_masked: '623099*********1234', account_class: 'II', status: 'active', balance_fen: 15000, pending_in_fen: 0,
  bound_card_masked: '622202*********4321', rules_version: 'r', opened_at: '2026-11-30T00:00:00Z',
  limits: { daily_outflow_fen: 1000000, daily_outflow_used_fen: 0, daily_outflow_remaining_fen: 1000000, yearly_outflow_fen: 20000000,
    yearly_outflow_used_fen: 0, yearly_outflow_remaining_fen: 20000000, balance_cap_fen: null, balance_room_fen: null }
}
const CLASS_III = Object.assign({}, ACCOUNT, { id: 5, account_class: 'III', number_masked: '623099*********5555' })

function start() {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
}

test('vehicles page: the colour follows the plate unless picked; malformed plates are refused without a request; VEHICLE_BOUND', async () => {
  start()
  const fake = fakeNetwork((method, path) => {
    if (method === 'DELETE') return apiError(409, 'VEHICLE_BOUND', '该车辆已绑定 ETC 卡，请先解绑')
    if (path === '/api/v1/vehicles') return ok({ vehicles: [VEHICLE] })
    if (path === '/api/v1/etc-bindings') return ok({ bindings: [Object.assign({}, BINDING, { arrears_fen: 0 })] })
    return { statusCode: 404, data: {} }
  })
  try {
    const page = shim.loadPage('pages/etc/vehicles/vehicles')
    await page.onLoad({})
    assert.match(shim.render(page).text, /粤BD12345\n渐变绿牌 · 新能源\nETC 已开通\n查看ETC/)
    page.onPlateInput({ detail: { value: '粤b 12345d' } })
    assert.deepEqual([page.data.plate, page.data.color, page.data.colorLabel], ['粤B12345D', 'yellow_green', '黄绿双拼'])
    page.onPlateInput({ detail: { value: '京a 12345' } })
    assert.equal(page.data.color, 'blue', 'back to 7 characters: a green no longer fits')
    page.onChooseColor({ currentTarget: { dataset: { value: 'yellow' } } })
    page.onPlateInput({ detail: { value: '京a 1234' } })
    page.onPlateInput({ detail: { value: '京a 12345' } })
    assert.equal(page.data.color, 'yellow', 'a colour the user picked stays while it fits')
    page.onPlateInput({ detail: { value: '京a d12345' } })
    assert.equal(page.data.color, 'gradient_green', 'an 8-character plate has one colour')
    page.onChooseColor({ currentTarget: { dataset: { value: 'pink' } } })
    assert.equal(page.data.color, 'gradient_green', 'an unknown colour is ignored')

    const before = fake.calls.length
    for (const [typed, code] of [['', 'PLATE_REQUIRED'], ['京AO2345', 'PLATE_INVALID']]) {
      page.onPlateInput({ detail: { value: typed } })
      assert.equal(await page.onAdd(), null)
      assert.equal(page.data.error.code, code)
      assert.equal(shim.lastToast().title, errors.MESSAGES[code])
    }
    page.onPlateInput({ detail: { value: '京A12345' } })
    page.onChooseColor({ currentTarget: { dataset: { value: 'yellow_green' } } })
    assert.equal(await page.onAdd(), null)
    assert.equal(page.data.error.code, 'PLATE_COLOR_MISMATCH')
    assert.equal(page.data.error.field, 'plate_color')
    assert.equal(fake.calls.length, before, 'nothing sent')

    assert.equal(await page.onRemove({ currentTarget: { dataset: { id: 4 } } }), null)
    assert.equal(fake.calls.pop().method, 'DELETE')
    assert.equal(page.data.error.message, '该车辆已绑定 ETC 卡，请先解除绑定再删除')
    assert.match(shim.render(page).text, /该车辆已绑定 ETC 卡，请先解除绑定再删除/)
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('bind page: ALREADY_BOUND, ETC_CARD_INVALID, ACCOUNT_NOT_ELIGIBLE and AUTHORISATION_NOT_SIGNED have friendly texts', async () => {
  start()
  const answers = []
  const fake = fakeNetwork((method, path) => {
    if (method === 'POST') return answers.shift()
    if (path === '/api/v1/vehicles') return ok({ vehicles: [VEHICLE] })
    if (path === '/api/v1/accounts') return ok({ accounts: [CLASS_III, ACCOUNT] })
    if (path === '/api/v1/etc-bindings') return ok({ bindings: [] })
    if (path === '/api/v1/contracts') return ok({ contracts: [] })
    return { statusCode: 404, data: {} }
  })
  try {
    const page = shim.loadPage('pages/etc/bind/bind')
    await page.onLoad({})
    assert.equal(page.data.vehicleId, 4)
    assert.equal(page.data.accountId, 3, 'the Class II account, not the newer Class III one')
    assert.match(shim.render(page).text, /Ⅲ类户 623099\*{9}5555\n不可绑定/)

    // A Class III account cannot be chosen: said on the page, no request.
    const before = fake.calls.length
    page.onChooseAccount({ currentTarget: { dataset: { id: 5 } } })
    assert.equal(page.data.accountId, 3)
    assert.equal(page.data.error.code, 'ACCOUNT_NOT_ELIGIBLE')
    assert.equal(shim.lastToast().title, 'ETC 自动扣款只能绑定状态正常的Ⅱ类户')
    assert.equal(fake.calls.length, before)

    page.onCardInput({ detail: { value: '1101 2345 6789 0123 4567' } })
    const card = '11012345678901234567'
    const tap = async (answer) => {
      answers.push(answer)
      const out = await page.onSubmit()
      const post = fake.calls.filter((c) => c.method === 'POST').pop()
      assert.deepEqual(post.data, { vehicle_id: 4, card_number: card, account_id: 3 })
      return out
    }
    assert.equal(await tap(apiError(409, 'ALREADY_BOUND', '该 ETC 卡或车牌已绑定')), null)
    assert.equal(page.data.error.message, '该 ETC 卡或车辆已绑定自动扣款，不能重复绑定')
    assert.equal(await tap(apiError(422, 'ETC_CARD_INVALID', 'ETC 卡号应为 20 位数字', 'card_number')), null)
    assert.deepEqual(page.data.error, { code: 'ETC_CARD_INVALID', message: 'ETC 卡号应为 20 位数字，请核对', field: 'card_number' })
    assert.equal(await tap(apiError(409, 'ACCOUNT_NOT_ELIGIBLE', 'x', 'account_id')), null)
    assert.equal(page.data.error.message, 'ETC 自动扣款只能绑定状态正常的Ⅱ类户')
    assert.match(shim.render(page).text, /ETC 自动扣款只能绑定状态正常的Ⅱ类户/)

    const pending = Object.assign({}, BINDING, { status: 'pending', arrears_fen: 0, activated_at: null, expires_at: '2026-12-01T01:00:00Z' })
    assert.equal((await tap({ statusCode: 201, data: pending })).id, 9)
    assert.equal(page.data.binding.pending, true)
    assert.equal(page.data.authorised, false)
    answers.push(apiError(409, 'AUTHORISATION_NOT_SIGNED', '请先签署 ETC 自动扣款授权书'))
    assert.equal(await page.onActivate(), null)
    assert.equal(fake.calls.pop().path, '/api/v1/etc-bindings/9/activate')
    assert.equal(page.data.error.message, '请先签署 ETC 自动扣款授权书')
    assert.match(shim.render(page).text, /去签署 >[\s\S]*请先签署 ETC 自动扣款授权书/)
    page.goSign()
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/contract/contract?template=etc_autodebit&subject_id=9' })
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('bind page: a card number that is not 20 digits, no car or no Class II account: refused on the page', async () => {
  start()
  const fake = fakeNetwork((method, path) => {
    if (path === '/api/v1/vehicles') return ok({ vehicles: [] })
    if (path === '/api/v1/accounts') return ok({ accounts: [CLASS_III] })
    return ok({ bindings: [] })
  })
  try {
    const page = shim.loadPage('pages/etc/bind/bind')
    await page.onLoad({})
    const text = shim.render(page).text
    assert.match(text, /尚未登记车辆，请先添加车辆。/)
    assert.match(text, /ETC 自动扣款需绑定状态正常的Ⅱ类户。\n开立Ⅱ类户/)
    const before = fake.calls.length
    assert.equal(await page.onSubmit(), null)
    assert.equal(page.data.error.code, 'VEHICLE_REQUIRED')
    page.setData({ vehicleId: 4 })
    assert.equal(await page.onSubmit(), null)
    assert.equal(page.data.error.code, 'ACCOUNT_REQUIRED')
    page.setData({ accountId: 3 })
    page.onCardInput({ detail: { value: '1101234567890123456' } })
    assert.equal(page.data.cardDigits, 19)
    assert.equal(await page.onSubmit(), null)
    assert.equal(page.data.error.code, 'ETC_CARD_INVALID')
    assert.equal(shim.lastToast().title, 'ETC 卡号应为 20 位数字，请核对')
    assert.equal(fake.calls.length, before, 'nothing sent')
    page.goOpenAccount()
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/account/open/open?class=II' })
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})

test('binding page: arrears in yuan, debit labels, and unbinding refused with the server\'s arrears message', async () => {
  start()
  const SERVER = '尚有欠费 ¥200.00 未补缴，补缴后才能解绑'
  let owed = true
  const fake = fakeNetwork((method, path) => {
    if (method === 'DELETE') {
      return owed ? apiError(409, 'ARREARS_OUTSTANDING', SERVER)
        : ok(Object.assign({}, BINDING, { status: 'unbound', arrears_fen: 0, unbound_at: '2026-11-30T02:00:00Z' }))
    }
    if (path === '/api/v1/etc-bindings/9') return ok(BINDING)
    if (path === '/api/v1/accounts/3') return ok(ACCOUNT)
    if (path === '/api/v1/etc-bindings/9/debits') {
      return ok({ debits: [debit({ out_trade_no: 'ETC0002', status: 'arrears', amount_fen: 20000, refusal_code: 'INSUFFICIENT_FUNDS' }), debit({ category: 'parking' })], next_cursor: null })
    }
    return { statusCode: 404, data: {} }
  })
  try {
    const page = shim.loadPage('pages/etc/binding/binding')
    await page.onLoad({ id: '9' })
    let text = shim.render(page).text
    assert.match(text, /扣款账户\nⅡ类户 623099\*{9}1234 >\n账户余额\n¥150\.00\n欠费\n¥200\.00/)
    assert.match(text, /通行费\n¥200\.00\n京港澳高速杜家坎站\n欠费\n.*\n未能扣款：账户余额不足\n停车费\n¥35\.00\n京港澳高速杜家坎站\n已扣款/)
    assert.equal(await page.onUnbind(), null)
    assert.equal(shim.state.modals.pop().title, '解除绑定')
    assert.equal(fake.calls.pop().method, 'DELETE')
    assert.equal(page.data.error.message, SERVER, 'the amount the server names')
    assert.equal(shim.lastToast().title, SERVER)
    assert.equal(page.data.binding.status, 'active')
    text = shim.render(page).text
    assert.ok(text.includes(SERVER))
    assert.equal(errors.describe({ code: 'ARREARS_OUTSTANDING', message: '' }), '尚有欠费未补缴，补缴后才能解除绑定', 'without the server\'s message')

    // Nothing owed: unbound, no actions left.
    owed = false
    const unbound = await page.onUnbind()
    assert.equal(unbound.status, 'unbound')
    assert.equal(shim.lastToast().title, '已解除绑定')
    text = shim.render(page).text
    assert.match(text, /粤BD12345\n已解绑/)
    assert.match(text, /解绑时间\n/)
    assert.ok(!text.includes('解除绑定') && !text.includes('暂停自动扣款'), text)

    // A page opened without a usable id sends nothing.
    const before = fake.calls.length
    const bad = shim.loadPage('pages/etc/binding/binding')
    assert.equal(await bad.onLoad({ id: 'abc' }), null)
    assert.equal(bad.data.error.code, 'BINDING_NOT_FOUND')
    assert.equal(fake.calls.length, before)
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    fake.restore()
    shim.reset()
  }
})
