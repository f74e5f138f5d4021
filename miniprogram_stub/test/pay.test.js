/**
 * utils/pay.js and the pay page (pages/etc/pay/pay) against scripted answers, without a backend: wx.request and
 * wx.requestPayment are answered here. The journey pays real arrears through WeChat Pay's emulator.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const shim = require('./wx-shim')

shim.install({ baseUrl: 'http://127.0.0.1:9' })
const pay = require('../utils/pay')
const errors = require('../utils/errors')

const BINDING = {
  id: 9, status: 'active', vehicle_id: 4, account_id: 3, card_number_masked: '110123**********4567', obu_id: null,
  plate_number: '粤BD12345', plate_color: 'gradient_green', arrears_fen: 20000, authorisation_contract_id: 12,
  created_at: '2026-11-30T01:00:00Z', expires_at: null, activated_at: '2026-11-30T01:01:00Z', suspended_at: null, unbound_at: null
}
const PARAMS = { timeStamp: '1764460800', nonceStr: 'AbCdEf0123456789', package: 'prepay_id=wx30095355118382880000000000000001', signType: 'RSA', paySign: 'c2lnbmF0dXJl' }

function order(status, overrides) {
  return Object.assign({
    id: 21, purpose: 'arrears', reference_id: 9, out_trade_no: 'PO20261130A1B2C3D4E5F60718', amount_fen: 20000, status,
    created_at: '2026-11-30T02:00:00Z', time_expire: '2026-11-30T02:30:00Z', paid_at: status === 'paid' ? '2026-11-30T02:01:00Z' : null,
    refunded_fen: 0, pay_params: status === 'prepaid' ? PARAMS : null
  }, overrides || {})
}

function apiError(statusCode, code, message) {
  return { statusCode, data: { error: { code, message, field: null } } }
}

/**
 * wx.request answered by handler(method, path) → {statusCode, data} or 'fail' (a network error); wx.requestPayment
 * by the queued outcomes ('ok', 'cancel', 'fail'). Records both.
 */
function fake(handler) {
  const realRequest = shim.wx.request
  const realPay = shim.wx.requestPayment
  const calls = []
  const payments = []
  const outcomes = []
  shim.wx.request = (opts) => {
    const method = String(opts.method || 'GET').toUpperCase()
    const path = new URL(opts.url).pathname
    calls.push({ method, path, data: opts.data, key: (opts.header || {})['Idempotency-Key'] || null })
    const res = handler(method, path, opts)
    setImmediate(() => {
      if (res === 'fail') opts.fail && opts.fail({ errMsg: 'request:fail timeout' })
      else opts.success && opts.success(Object.assign({ header: {} }, res))
    })
    return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {} }
  }
  shim.wx.requestPayment = (opts) => {
    payments.push({ timeStamp: opts.timeStamp, nonceStr: opts.nonceStr, package: opts.package, signType: opts.signType, paySign: opts.paySign })
    const outcome = outcomes.shift() || 'ok'
    setImmediate(() => {
      if (outcome === 'ok') opts.success({ errMsg: 'requestPayment:ok' })
      else opts.fail({ errMsg: outcome === 'cancel' ? 'requestPayment:fail cancel' : 'requestPayment:fail' })
      if (opts.complete) opts.complete({})
    })
  }
  return {
    calls,
    payments,
    outcomes,
    posts: () => calls.filter((c) => c.method === 'POST'),
    restore: () => {
      shim.wx.request = realRequest
      shim.wx.requestPayment = realPay
    }
  }
}

function start() {
  shim.reset()
  shim.wx.setStorageSync('access_token', 'token')
}

async function loaded(options) {
  const page = shim.loadPage('pages/etc/pay/pay')
  page.setData({ pollIntervalMs: 1, backDelayMs: 1 })
  await page.onLoad(options || { binding_id: '9', purpose: 'arrears' })
  return page
}

test('utils/pay: order view model, pay_params check, purposes', () => {
  const o = pay.viewOrder(order('prepaid'))
  assert.equal(o.amount, '¥200.00')
  assert.equal(o.statusText, '待支付')
  assert.equal(o.payable, true)
  assert.equal(o.paid, false)
  assert.equal(o.title, 'ETC欠费补缴')
  assert.equal(o.paidAt, '')
  const paid = pay.viewOrder(order('paid'))
  assert.deepEqual([paid.statusText, paid.paid, paid.payable], ['已支付', true, false])
  assert.ok(paid.paidAt)
  assert.deepEqual(['created', 'prepaid', 'paid', 'closed', 'failed'].map((s) => pay.ORDER_STATUS[s]), ['待支付', '待支付', '已支付', '已关闭', '支付失败'])
  assert.equal(pay.viewOrder(null), null)
  assert.equal(pay.payParamsOk(PARAMS), true)
  assert.equal(pay.payParamsOk(Object.assign({}, PARAMS, { signType: 'MD5' })), false)
  assert.equal(pay.payParamsOk(Object.assign({}, PARAMS, { paySign: '' })), false)
  assert.equal(pay.payParamsOk(Object.assign({}, PARAMS, { package: 'wx123' })), false)
  assert.equal(pay.payParamsOk(null), false)
  assert.equal(pay.purposeOf('obu_fee'), 'obu_fee')
  assert.equal(pay.purposeOf('toString'), 'arrears', 'only own purposes')
  assert.equal(pay.purposeOf(undefined), 'arrears')
})

test('utils/pay: an order in the list: purpose, yuan, status texts, paid time, refunded amount, refundable only for a paid device fee with something left', () => {
  const fee = (status, overrides) => order(status, Object.assign({ purpose: 'obu_fee', amount_fen: 12345 }, overrides || {}))
  let o = pay.viewOrder(fee('paid'))
  assert.deepEqual([o.title, o.amount, o.statusText, o.tone, o.referenceId], ['ETC车载设备费', '¥123.45', '已支付', 'ok', 9])
  assert.ok(o.paidAt)
  assert.deepEqual([o.refundable, o.refundableFen, o.refundableAmount, o.refunded, o.refundedFen], [true, 12345, '¥123.45', '', 0])
  o = pay.viewOrder(fee('paid', { refunded_fen: 2345 }))
  assert.deepEqual([o.refundable, o.refundableFen, o.refundableAmount, o.refunded], [true, 10000, '¥100.00', '¥23.45'], 'partly refunded: the rest')
  o = pay.viewOrder(fee('paid', { refunded_fen: 12345 }))
  assert.deepEqual([o.refundable, o.refundableFen, o.refundableAmount, o.refunded, o.statusText], [false, 0, '', '¥123.45', '已支付'], 'all refunded')
  o = pay.viewOrder(order('paid', { amount_fen: 123456 }))
  assert.deepEqual([o.title, o.amount, o.statusText, o.refundable], ['ETC欠费补缴', '¥1,234.56', '已支付', false], 'arrears are not refunded')
  for (const status of ['created', 'prepaid', 'closed', 'failed']) {
    assert.equal(pay.viewOrder(fee(status)).refundable, false, status + ' is not paid')
  }
  assert.deepEqual(['created', 'prepaid', 'paid', 'closed', 'failed'].map((s) => [pay.viewOrder(fee(s)).statusText, pay.viewOrder(fee(s)).payable]),
    [['待支付', true], ['待支付', true], ['已支付', false], ['已关闭', false], ['支付失败', false]])
  assert.deepEqual(['prepaid', 'paid', 'closed', 'failed'].map((s) => pay.viewOrder(fee(s)).tone), ['', 'ok', 'hint', 'bad'])
  // An order as the list has it (OrderSummary: no pay_params); refunded_fen missing or odd counts as nothing refunded.
  const summary = fee('paid')
  delete summary.pay_params
  delete summary.refunded_fen
  assert.deepEqual([pay.viewOrder(summary).refunded, pay.viewOrder(summary).refundable], ['', true])
  assert.equal(pay.viewOrder(fee('paid', { refunded_fen: '100' })).refunded, '')
  assert.deepEqual(Object.keys(pay.REFUND_STATUS).sort(), ['abnormal', 'closed', 'processing', 'success'])
  assert.deepEqual(pay.REFUNDABLE_PURPOSES, ['obu_fee'])
})

test('errors: the WeChat Pay order and refund codes have texts', () => {
  assert.match(errors.describe({ code: 'NOTHING_TO_PAY', message: 'x' }), /没有需要支付的款项/)
  assert.equal(errors.describe({ code: 'WECHATPAY_UNAVAILABLE' }), '微信支付暂不可用，请稍后重试')
  assert.match(errors.describe({ code: 'WECHATPAY_REFUSED', message: '微信支付拒绝了该订单（PARAM_ERROR）' }), /微信支付暂未受理/, 'not WeChat Pay\'s code')
  assert.match(errors.describe({ code: 'ORDER_NOT_FOUND' }), /支付订单不存在/)
  assert.equal(errors.describe({ code: 'NOT_REFUNDABLE', message: 'x' }), '该订单不能退款（只退已支付的设备费）')
  assert.equal(errors.describe({ code: 'REFUND_EXCEEDS_PAID', message: '最多还可退 0 分' }), '退款金额超过可退金额', 'not the amount in fen')
  assert.match(errors.describe({ code: 'WECHATPAY_REFUND_REFUSED', message: '微信支付拒绝了该退款（NOT_ENOUGH）' }), /微信支付暂未受理该退款/)
})

test('pay page: one Idempotency-Key per intent (kept through a network error and a 503); a cancel, then the same order paid', async () => {
  start()
  const posts = ['fail', apiError(503, 'WECHATPAY_UNAVAILABLE', '微信支付暂不可用，请稍后重试'), { statusCode: 201, data: order('prepaid') },
    { statusCode: 200, data: order('prepaid') }]
  const gets = [order('prepaid'), order('prepaid'), order('paid')]
  let arrears = 20000
  const f = fake((method, path) => {
    if (method === 'POST') return posts.shift()
    if (path === '/api/v1/etc-bindings/9') return { statusCode: 200, data: Object.assign({}, BINDING, { arrears_fen: arrears }) }
    if (path === '/api/v1/payments/orders/21') {
      const o = gets.shift()
      if (o.status === 'paid') arrears = 0
      return { statusCode: 200, data: o }
    }
    return { statusCode: 404, data: {} }
  })
  try {
    const page = await loaded()
    assert.deepEqual(f.calls.map((c) => c.method + ' ' + c.path), ['GET /api/v1/etc-bindings/9'], 'nothing ordered on load')
    let text = shim.render(page).text
    assert.match(text, /ETC欠费补缴\n.*\n车牌\n粤BD12345 渐变绿\nETC 卡号\n110123\*{10}4567\n当前欠费\n¥200\.00/)
    assert.match(text, /微信支付 ¥200\.00/)

    // The order's answer lost, then WeChat Pay unavailable: the same key both times, nothing paid.
    assert.equal(await page.onPay(), null)
    assert.equal(page.data.retrying, true)
    assert.equal(page.data.error.code, 'NETWORK_ERROR')
    assert.match(shim.render(page).text, /\n重试\n上次下单结果未知/)
    assert.equal(await page.onPay(), null)
    assert.equal(page.data.error.message, '微信支付暂不可用，请稍后重试')
    assert.equal(page.data.retrying, true)
    assert.equal(f.payments.length, 0, 'no cashier without an order')

    // The order (201); the user closes WeChat's cashier.
    f.outcomes.push('cancel')
    assert.equal(await page.onPay(), null)
    assert.deepEqual(f.posts().map((c) => c.data), Array(3).fill({ purpose: 'arrears', reference_id: 9 }), 'no amount: the server\'s')
    assert.equal(new Set(f.posts().map((c) => c.key)).size, 1, 'one key through the unknown outcomes')
    assert.deepEqual(f.payments, [PARAMS], 'the order\'s pay_params, as they are')
    assert.equal(page.data.phase, 'cancelled')
    assert.equal(page.data.retrying, false)
    assert.equal(shim.lastToast().title, '已取消支付')
    assert.ok(!f.calls.some((c) => c.path.startsWith('/api/v1/payments/orders/')), 'a cancel asks nothing')
    text = shim.render(page).text
    assert.match(text, /支付订单\n支付金额\n¥200\.00\n订单状态\n待支付\n订单号\nPO20261130A1B2C3D4E5F60718\n请于此前支付\n/)
    assert.match(text, /已取消支付\n未扣款，订单仍可支付，可重新支付。\n重新支付/)

    // 重新支付: a new intent (new key), the server answers the same open order (200); paid; polled until paid.
    const paid = await page.onPay()
    assert.equal(paid.status, 'paid')
    const keys = f.posts().map((c) => c.key)
    assert.equal(keys.length, 4)
    assert.notEqual(keys[3], keys[2], 'a new key after a final answer')
    assert.equal(f.payments.length, 2)
    assert.deepEqual(f.calls.filter((c) => c.path === '/api/v1/payments/orders/21').length, 3, 'polled until paid')
    assert.equal(page.data.phase, 'paid')
    assert.ok(shim.state.toasts.some((t) => t.title === '支付成功'))
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateBack', delta: 1 }, 'back to the binding')
    text = shim.render(page).text
    assert.match(text, /当前欠费\n¥0\.00/)
    assert.match(text, /订单状态\n已支付\n订单号\nPO20261130A1B2C3D4E5F60718\n支付时间\n/)
    assert.match(text, /支付成功\n欠费已补缴，正在返回 ETC 绑定。\n返回ETC绑定/)
    assert.ok(!text.includes('重新支付') && !text.includes('微信支付 ¥'), text)
    assert.equal(await page.onPay(), null, 'nothing more to pay')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    f.restore()
    shim.reset()
  }
})

test('pay page: PAYERROR is asked about once (支付未成功, a new order next time); a payment not yet confirmed is 支付处理中 until refreshed', async () => {
  start()
  const posts = [{ statusCode: 201, data: order('prepaid') }, { statusCode: 201, data: order('prepaid', { id: 22 }) }]
  const gets = { 21: [order('failed')], 22: [order('prepaid', { id: 22 }), order('prepaid', { id: 22 }), order('paid', { id: 22 })] }
  const f = fake((method, path) => {
    if (method === 'POST') return posts.shift()
    if (path === '/api/v1/etc-bindings/9') return { statusCode: 200, data: BINDING }
    const m = /^\/api\/v1\/payments\/orders\/(\d+)$/.exec(path)
    if (m) return { statusCode: 200, data: gets[m[1]].shift() }
    return { statusCode: 404, data: {} }
  })
  try {
    const page = await loaded()
    page.setData({ pollTimes: 2 })
    f.outcomes.push('fail')
    assert.equal(await page.onPay(), null)
    assert.equal(f.calls.filter((c) => c.path === '/api/v1/payments/orders/21').length, 1, 'the server is asked once')
    assert.equal(page.data.phase, 'failed')
    assert.match(shim.render(page).text, /订单状态\n支付失败[\s\S]*支付未成功\n未扣款，可重新支付。\n重新支付/)

    // Paid in WeChat, but WeChat Pay has not confirmed it after two queries: 支付处理中, refreshed later.
    assert.equal(await page.onPay(), null)
    assert.equal(page.data.order.id, 22, 'a failed order is not payable: the server made a new one')
    assert.equal(page.data.phase, 'processing')
    let text = shim.render(page).text
    assert.match(text, /支付处理中\n微信支付尚未确认结果，请稍后刷新查看，请勿重复支付。\n刷新支付结果/)
    assert.ok(!text.includes('重新支付'))
    const posted = f.posts().length
    const done = await page.onRefresh()
    assert.equal(done.status, 'paid')
    assert.equal(f.posts().length, posted, 'refreshing orders nothing')
    assert.equal(page.data.phase, 'paid')
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateBack', delta: 1 })
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    f.restore()
    shim.reset()
  }
})

test('pay page: nothing owed is said without a request; NOTHING_TO_PAY from the server is shown and the binding read again', async () => {
  start()
  let arrears = 0
  const f = fake((method, path) => {
    if (method === 'POST') return apiError(409, 'NOTHING_TO_PAY', '没有需要支付的款项')
    if (path === '/api/v1/etc-bindings/9') return { statusCode: 200, data: Object.assign({}, BINDING, { arrears_fen: arrears }) }
    return { statusCode: 404, data: {} }
  })
  try {
    let page = await loaded()
    assert.equal(page.data.nothingToPay, true)
    let view = shim.render(page)
    assert.match(view.text, /当前欠费\n¥0\.00\n该绑定没有需要补缴的欠费。/)
    assert.equal(view.select('button.primary')[0].attrs.disabled, true)

    // A stale page (arrears paid meanwhile elsewhere): the server says so; the page reads the binding again.
    arrears = 20000
    page = await loaded()
    arrears = 0
    assert.equal(await page.onPay(), null)
    assert.equal(page.data.error.message, errors.MESSAGES.NOTHING_TO_PAY)
    assert.equal(page.data.retrying, false, 'a final answer')
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(page.data.nothingToPay, true)
    assert.equal(f.payments.length, 0)

    // Without a usable binding id nothing is sent.
    const before = f.calls.length
    page = shim.loadPage('pages/etc/pay/pay')
    assert.equal(await page.onLoad({ binding_id: 'x' }), null)
    assert.equal(page.data.error.code, 'BINDING_NOT_FOUND')
    assert.equal(await page.onPay(), null)
    assert.equal(f.calls.length, before)
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    f.restore()
    shim.reset()
  }
})

test('binding page: 补缴欠费 while arrears are owed opens the pay page; settled debits say 已补缴', async () => {
  start()
  let arrears = 20000
  const f = fake((method, path) => {
    if (path === '/api/v1/etc-bindings/9') return { statusCode: 200, data: Object.assign({}, BINDING, { arrears_fen: arrears }) }
    if (path === '/api/v1/accounts/3') return { statusCode: 404, data: {} }
    if (path === '/api/v1/etc-bindings/9/debits') {
      return {
        statusCode: 200,
        data: {
          debits: [{ out_trade_no: 'ETC2', category: 'toll', status: arrears ? 'arrears' : 'settled', amount_fen: 20000, refunded_fen: 0, merchant: 'M',
            occurred_at: '2026-11-30T08:00:00+08:00', booked_at: '2026-11-30T00:00:01Z', refusal_code: 'INSUFFICIENT_FUNDS' }],
          next_cursor: null
        }
      }
    }
    return { statusCode: 404, data: {} }
  })
  try {
    const page = shim.loadPage('pages/etc/binding/binding')
    await page.onLoad({ id: '9' })
    let view = shim.render(page)
    assert.match(view.text, /欠费补缴后才能解除绑定。\n补缴欠费\n/)
    page.goPay()
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/etc/pay/pay?binding_id=9&purpose=arrears' })
    arrears = 0
    await page.onShow()
    view = shim.render(page)
    assert.match(view.text, /欠费\n¥0\.00/)
    assert.match(view.text, /通行费\n¥200\.00\nM\n已补缴/)
    assert.ok(!view.text.includes('补缴欠费'))
    page.goPay()
    assert.equal(shim.state.navigations.length, 0, 'nothing to pay: no navigation')
    page.goOrders()
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/payments/orders/orders' }, 'the payment orders')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    f.restore()
    shim.reset()
  }
})

// ---------- the orders page (pages/payments/orders/orders) ----------

/** The user's orders as the list answers them (OrderSummary: no pay_params), newest first. */
function summary(status, overrides) {
  const o = order(status, overrides)
  delete o.pay_params
  return o
}

test('orders page: newest first, 加载更多 through next_cursor; purpose, yuan, status, paid time; a payable order opens the pay page', async () => {
  start()
  const pages = {
    '': { orders: [summary('paid', { id: 31, purpose: 'obu_fee', amount_fen: 12345, out_trade_no: 'PO31' }), summary('prepaid', { id: 30, out_trade_no: 'PO30' })], next_cursor: 'b3JkZXI6MzA' },
    b3JkZXI6MzA: { orders: [summary('paid', { id: 21, refunded_fen: 0 }), summary('closed', { id: 20, purpose: 'obu_fee', out_trade_no: 'PO20' })], next_cursor: null }
  }
  let cursorBroken = false
  const f = fake((method, path, opts) => {
    if (method === 'GET' && path === '/api/v1/payments/orders') {
      const cursor = (opts.data && opts.data.cursor) || ''
      if (cursorBroken && cursor) return apiError(422, 'CURSOR_INVALID', 'cursor 无效')
      return { statusCode: 200, data: pages[cursor] }
    }
    return { statusCode: 404, data: {} }
  })
  try {
    const page = shim.loadPage('pages/payments/orders/orders')
    page.setData({ pageSize: 2 })
    const first = await page.onLoad({})
    assert.equal(first.length, 2)
    assert.deepEqual(f.calls.map((c) => [c.method, c.path, c.data]), [['GET', '/api/v1/payments/orders', { limit: 2 }]])
    let view = shim.render(page)
    const fee = page.data.orders[0]
    assert.match(view.text, new RegExp('^支付订单\n.*\nETC车载设备费\n¥123\\.45\n' + fee.createdAt + '\n已支付\n支付时间 ' + fee.paidAt + '\n订单号 PO31\n申请退款\n' +
      'ETC欠费补缴\n¥200\\.00\n' + page.data.orders[1].createdAt + '\n待支付\n订单号 PO30\n请于 ' + page.data.orders[1].expiresAt + ' 前支付，去支付 >\n加载更多$'))
    assert.ok(!view.text.includes('已退款'), 'nothing refunded yet')

    assert.equal((await page.onLoadMore()).length, 2)
    assert.deepEqual(f.calls[1].data, { limit: 2, cursor: 'b3JkZXI6MzA' })
    assert.deepEqual(page.data.orders.map((o) => [o.id, o.statusText, o.refundable]), [[31, '已支付', true], [30, '待支付', false], [21, '已支付', false], [20, '已关闭', false]])
    view = shim.render(page)
    assert.match(view.text, /\nETC欠费补缴\n¥200\.00\n.*\n已支付\n支付时间 .*\n订单号 PO20261130A1B2C3D4E5F60718\nETC车载设备费\n¥200\.00\n.*\n已关闭\n订单号 PO20\n没有更多了$/)
    assert.equal(view.select('button').filter((b) => b.events.catchtap === 'onRefund').length, 1, 'only the paid device fee can be refunded')
    assert.equal(await page.onLoadMore(), null, 'no next page: nothing asked')
    assert.equal(f.calls.length, 2)

    // Tapping: a payable order opens the pay page for its binding and purpose; the others do nothing.
    page.onOpen({ currentTarget: { dataset: { id: 30 } } })
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/etc/pay/pay?binding_id=9&purpose=arrears' })
    page.onOpen({ currentTarget: { dataset: { id: 21 } } })
    page.onOpen({ currentTarget: { dataset: { id: 20 } } })
    assert.equal(shim.state.navigations.length, 0)

    // Pull-down refresh: the first page again, replacing the list; back from the pay page (onShow) likewise.
    assert.equal((await page.onPullDownRefresh()).length, 2)
    assert.deepEqual(f.calls[2].data, { limit: 2 })
    assert.deepEqual(page.data.orders.map((o) => o.id), [31, 30])
    assert.equal(page.data.nextCursor, 'b3JkZXI6MzA')
    assert.equal((await page.onShow()).length, 2)

    // A cursor the server refuses: a text for this page.
    cursorBroken = true
    assert.equal(await page.onLoadMore(), null)
    assert.equal(page.data.error.code, 'CURSOR_INVALID')
    assert.equal(page.data.error.message, '支付订单加载失败，请下拉刷新后重试')
    assert.equal(shim.lastToast().title, '支付订单加载失败，请下拉刷新后重试')
    assert.deepEqual(page.data.orders.map((o) => o.id), [31, 30], 'the list stays')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    f.restore()
    shim.reset()
  }
})

test('orders page: 申请退款 asks to confirm, then POSTs a full refund (no amount) with one Idempotency-Key through a network error and a 503; reloaded: 已退款', async () => {
  start()
  let refunded = 0
  const posts = ['fail', apiError(503, 'WECHATPAY_UNAVAILABLE', '微信支付暂不可用，请稍后重试'),
    { statusCode: 201, data: { id: 5, order_id: 31, out_refund_no: 'RF20261130ABCDEF0123456789', amount_fen: 12345, status: 'processing', created_at: '2026-11-30T03:00:00Z', finished_at: null } }]
  const f = fake((method, path) => {
    if (method === 'GET' && path === '/api/v1/payments/orders') {
      return { statusCode: 200, data: { orders: [summary('paid', { id: 31, purpose: 'obu_fee', amount_fen: 12345, refunded_fen: refunded }), summary('paid', { id: 21 })], next_cursor: null } }
    }
    if (method === 'POST' && path === '/api/v1/payments/orders/31/refunds') {
      const res = posts.shift()
      if (res !== 'fail' && res.statusCode === 201) refunded = 12345
      return res
    }
    return { statusCode: 404, data: {} }
  })
  const realModal = shim.wx.showModal
  try {
    const page = shim.loadPage('pages/payments/orders/orders')
    await page.onLoad({})
    const tap = (id) => page.onRefund({ currentTarget: { dataset: { id } } })

    // Arrears are not refunded: refused on the page, nothing sent.
    assert.equal(await tap(21), null)
    assert.equal(page.data.error.message, errors.MESSAGES.NOT_REFUNDABLE)
    assert.equal(f.posts().length, 0)

    // The user declines the confirmation: nothing sent.
    shim.wx.showModal = (opts) => opts.success({ confirm: false, cancel: true })
    assert.equal(await tap(31), null)
    assert.equal(f.posts().length, 0)
    shim.wx.showModal = realModal

    // The answer lost: the intent is kept (重试退款, no second confirmation), then WeChat Pay unavailable, then done.
    assert.equal(await tap(31), null)
    assert.deepEqual(shim.state.modals.pop(), { title: '申请退款', content: '退还ETC车载设备费 ¥123.45，原路退回微信支付。' })
    assert.equal(page.data.error.code, 'NETWORK_ERROR')
    assert.equal(page.data.refundRetryId, 31)
    let view = shim.render(page)
    assert.match(view.text, /\n重试退款\n上次退款申请结果未知，重试不会重复退款。\n/)
    assert.equal(await tap(31), null)
    assert.equal(page.data.error.message, '微信支付暂不可用，请稍后重试')
    assert.equal(page.data.refundRetryId, 31)
    const refund = await tap(31)
    assert.equal(refund.status, 'processing')
    assert.equal(shim.state.modals.length, 0, 'a retry is the same intent: not asked again')
    const sent = f.posts()
    assert.deepEqual(sent.map((c) => c.data), [{}, {}, {}], 'no amount: all that is left')
    assert.equal(new Set(sent.map((c) => c.key)).size, 1, 'one key through the unknown outcomes')
    assert.match(sent[0].key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    assert.deepEqual(shim.lastToast(), { title: '退款申请已提交', icon: 'success', duration: undefined })
    assert.equal(f.calls.filter((c) => c.method === 'GET').length, 2, 'the list read again')
    assert.deepEqual([page.data.refundRetryId, page.data.refunding, page.data.error], [null, null, null])
    view = shim.render(page)
    assert.match(view.text, /ETC车载设备费\n¥123\.45\n.*\n已支付\n支付时间 .*\n已退款 ¥123\.45\n订单号 /)
    assert.ok(!view.text.includes('申请退款') && !view.text.includes('重试退款'), 'nothing left to refund')
    assert.equal(await tap(31), null)
    assert.equal(f.posts().length, 3, 'nothing left: refused on the page')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    shim.wx.showModal = realModal
    f.restore()
    shim.reset()
  }
})

test('orders page: a refund\'s final refusal (REFUND_EXCEEDS_PAID, NOT_REFUNDABLE) is shown, the list read again, and the next tap is a new intent', async () => {
  start()
  const posts = [apiError(422, 'REFUND_EXCEEDS_PAID', '最多还可退 0 分'), apiError(409, 'NOT_REFUNDABLE', '该订单不能退款'),
    { statusCode: 201, data: { id: 6, order_id: 31, out_refund_no: 'RF2', amount_fen: 100, status: 'success', created_at: '2026-11-30T03:00:00Z', finished_at: '2026-11-30T03:00:05Z' } }]
  const f = fake((method, path) => {
    if (method === 'GET' && path === '/api/v1/payments/orders') {
      return { statusCode: 200, data: { orders: [summary('paid', { id: 31, purpose: 'obu_fee', amount_fen: 12345, refunded_fen: 12245 })], next_cursor: null } }
    }
    if (method === 'POST') return posts.shift()
    return { statusCode: 404, data: {} }
  })
  try {
    const page = shim.loadPage('pages/payments/orders/orders')
    await page.onLoad({})
    assert.match(shim.render(page).text, /已退款 ¥122\.45\n订单号 .*\n申请退款/)
    const tap = () => page.onRefund({ currentTarget: { dataset: { id: 31 } } })
    assert.equal(await tap(), null)
    assert.equal(page.data.error.code, 'REFUND_EXCEEDS_PAID')
    assert.equal(page.data.error.message, '退款金额超过可退金额')
    assert.equal(shim.lastToast().title, '退款金额超过可退金额')
    assert.equal(page.data.refundRetryId, null, 'a final answer')
    assert.equal(f.calls.filter((c) => c.method === 'GET').length, 2, 'the list read again')
    assert.match(shim.render(page).text, /退款金额超过可退金额/)
    assert.equal(await tap(), null)
    assert.equal(page.data.error.message, '该订单不能退款（只退已支付的设备费）')
    assert.equal((await tap()).status, 'success')
    assert.equal(shim.lastToast().title, '退款成功')
    const keys = f.posts().map((c) => c.key)
    assert.equal(new Set(keys).size, 3, 'a new key after each final answer')
    assert.equal(shim.state.modals.length, 3, 'each a new intent, confirmed')
    assert.deepEqual(shim.state.renderErrors, [])
  } finally {
    f.restore()
    shim.reset()
  }
})
