/**
 * The requests the mini-program may send, as README.md ("What the API does so far") documents them, and a
 * check of a recorded request (shim.state.requests) against them. The backend refuses unknown JSON fields
 * (422 VALIDATION_ERROR), wants ids as integers and `consent` as the literal true; this catches a page that
 * sends anything else before the server has to.
 *
 *   const bodies = require('./request-bodies')
 *   bodies.check(record)   // → [] or ['POST /api/v1/contracts: subject_id must be a positive integer, got "7"']
 *
 * Field types: 'string' (non-empty), 'id' (a positive safe integer, not a string), 'true' (the boolean true),
 * 'fen' (an integer amount in fen, 1..10^12: never a float nor a string), 'count' (a query's positive integer,
 * as the number or its decimal text), an array (one of these values); a trailing '?' marks an optional field.
 * body: null means no body at all; {} means none or an empty object. headers: the headers a request must carry
 * ('key': an Idempotency-Key, 8-64 of [A-Za-z0-9_-.:]).
 *
 * The journey's last test also checks this list against the live OpenAPI document (/docs/openapi.json): every
 * entry is an operation there, with the same body fields, required fields, types, enums and bounds.
 */
'use strict'

// The plate colours (utils/etc.js COLORS; the schema's enum).
const PLATE_COLORS = ['blue', 'yellow', 'black', 'white', 'gradient_green', 'yellow_green']
// What a WeChat Pay order pays for (utils/pay.js PURPOSES; OrderBody.purpose's enum). The amount is the server's.
const PAYMENT_PURPOSES = ['arrears', 'obu_fee']

const DOCUMENTED = [
  { method: 'POST', path: '/api/v1/auth/login', body: { code: 'string' } },
  { method: 'POST', path: '/api/v1/auth/refresh', body: { refresh_token: 'string' } },
  { method: 'POST', path: '/api/v1/auth/logout', body: null },
  { method: 'GET', path: '/api/v1/me', query: {} },
  { method: 'POST', path: '/api/v1/me/phone', body: { code: 'string' } },
  { method: 'POST', path: '/api/v1/uploads', form: { kind: ['id_front', 'id_back', 'signature'] } },
  { method: 'POST', path: '/api/v1/identity/id-card', body: { front_upload_id: 'id', back_upload_id: 'id', name: 'string', id_number: 'string' } },
  { method: 'POST', path: '/api/v1/identity/face', body: {} },
  { method: 'POST', path: '/api/v1/identity/face/:verify_id/result', body: {} },
  { method: 'POST', path: '/api/v1/identity/bank-card', body: { card_number: 'string', reserved_phone: 'string' } },
  { method: 'GET', path: '/api/v1/contracts/templates', query: {} },
  { method: 'GET', path: '/api/v1/contracts', query: { template: 'string?', status: 'string?' } },
  { method: 'POST', path: '/api/v1/contracts', body: { template: 'string', subject_id: 'id?' } },
  { method: 'GET', path: '/api/v1/contracts/:id/pdf', query: {} },
  { method: 'GET', path: '/api/v1/contracts/:id/signed.pdf', query: {} },
  { method: 'GET', path: '/api/v1/contracts/:id/evidence', query: {} },
  { method: 'POST', path: '/api/v1/contracts/:id/sign', body: { signature_upload_id: 'id', consent: 'true', verify_id: 'string' } },
  { method: 'POST', path: '/api/v1/account-applications', body: { account_class: ['II', 'III'] } },
  { method: 'GET', path: '/api/v1/account-applications/:id', query: {} },
  { method: 'POST', path: '/api/v1/account-applications/:id/submit', body: null },
  { method: 'GET', path: '/api/v1/accounts', query: {} },
  { method: 'GET', path: '/api/v1/accounts/:id', query: {} },
  { method: 'GET', path: '/api/v1/accounts/:id/transactions', query: { cursor: 'string?', limit: 'count?' } },
  { method: 'POST', path: '/api/v1/accounts/:id/top-ups', body: { amount_fen: 'fen' }, headers: { 'Idempotency-Key': 'key' } },
  { method: 'POST', path: '/api/v1/accounts/:id/withdrawals', body: { amount_fen: 'fen' }, headers: { 'Idempotency-Key': 'key' } },
  { method: 'POST', path: '/api/v1/accounts/:id/loss-report', body: null },
  { method: 'DELETE', path: '/api/v1/accounts/:id/loss-report', body: { verify_id: 'string' } },
  { method: 'POST', path: '/api/v1/accounts/:id/reveal-number', body: { verify_id: 'string' } },
  { method: 'POST', path: '/api/v1/accounts/:id/bound-card', body: { card_number: 'string', reserved_phone: 'string', verify_id: 'string' } },
  { method: 'POST', path: '/api/v1/accounts/:id/close', body: { verify_id: 'string' }, headers: { 'Idempotency-Key': 'key' } },
  { method: 'GET', path: '/api/v1/vehicles', query: {} },
  { method: 'POST', path: '/api/v1/vehicles', body: { plate_number: 'string', plate_color: PLATE_COLORS } },
  { method: 'GET', path: '/api/v1/vehicles/:id', query: {} },
  { method: 'DELETE', path: '/api/v1/vehicles/:id', body: null },
  { method: 'GET', path: '/api/v1/etc-bindings', query: {} },
  { method: 'POST', path: '/api/v1/etc-bindings', body: { vehicle_id: 'id', card_number: 'string', account_id: 'id', obu_id: 'string?' } },
  { method: 'GET', path: '/api/v1/etc-bindings/:id', query: {} },
  { method: 'POST', path: '/api/v1/etc-bindings/:id/activate', body: null },
  { method: 'GET', path: '/api/v1/accounts/:id/statements/:month.pdf', query: {} },
  { method: 'GET', path: '/api/v1/accounts/:id/statements/:month.csv', query: {} },
  { method: 'POST', path: '/api/v1/etc-bindings/:id/suspend', body: null },
  { method: 'POST', path: '/api/v1/etc-bindings/:id/resume', body: null },
  { method: 'DELETE', path: '/api/v1/etc-bindings/:id', body: null },
  { method: 'GET', path: '/api/v1/etc-bindings/:id/debits', query: { cursor: 'count?', limit: 'count?' } },
  { method: 'POST', path: '/api/v1/payments/orders', body: { purpose: PAYMENT_PURPOSES, reference_id: 'id' }, headers: { 'Idempotency-Key': 'key' } },
  { method: 'GET', path: '/api/v1/payments/orders', query: { cursor: 'string?', limit: 'count?' } },
  { method: 'GET', path: '/api/v1/payments/orders/:id', query: {} },
  { method: 'POST', path: '/api/v1/payments/orders/:id/refunds', body: { amount_fen: 'fen?', reason: 'string?' }, headers: { 'Idempotency-Key': 'key' } }
]

// The bound of amount_fen (services/accounts/funding.py MAX_AMOUNT_FEN; utils/money.js uses the same).
const MAX_FEN = 1000000000000
const KEY_PATTERN = /^[A-Za-z0-9_\-.:]{8,64}$/

function pattern(p) {
  const re = p.replace(/[.]/g, '\\.').replace(/:id\b/g, '[1-9]\\d*').replace(/:verify_id\b/g, '[^/]+').replace(/:month\b/g, '[^/]+')
  return new RegExp('^' + re + '$')
}

for (const d of DOCUMENTED) d.re = pattern(d.path)

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype
}

function typeProblem(type, value) {
  if (Array.isArray(type)) return type.includes(value) ? null : 'must be one of ' + type.join(' / ')
  const t = type.replace(/\?$/, '')
  if (t === 'string') return typeof value === 'string' && value.length > 0 ? null : 'must be a non-empty string'
  if (t === 'id') return Number.isSafeInteger(value) && value > 0 ? null : 'must be a positive integer'
  if (t === 'true') return value === true ? null : 'must be the boolean true'
  if (t === 'fen') return Number.isSafeInteger(value) && value >= 1 && value <= MAX_FEN ? null : 'must be an integer number of fen, 1..' + MAX_FEN
  if (t === 'count') {
    const ok = (Number.isSafeInteger(value) && value > 0) || (typeof value === 'string' && /^[1-9]\d{0,8}$/.test(value))
    return ok ? null : 'must be a positive integer'
  }
  if (t === 'key') return typeof value === 'string' && KEY_PATTERN.test(value) ? null : 'must be 8-64 of [A-Za-z0-9_-.:]'
  return 'unknown type ' + t
}

function isOptional(type) {
  return typeof type === 'string' && type.endsWith('?')
}

function checkFields(label, spec, data) {
  const problems = []
  if (!isPlainObject(data)) return [label + ': the body must be a JSON object, got ' + JSON.stringify(data)]
  for (const key of Object.keys(data)) {
    if (!Object.prototype.hasOwnProperty.call(spec, key)) {
      problems.push(label + ': undocumented field "' + key + '" (documented: ' + (Object.keys(spec).join(', ') || 'none') + ')')
      continue
    }
    const type = spec[key]
    const p = typeProblem(type, data[key])
    if (p) problems.push(label + ': ' + key + ' ' + p + ', got ' + JSON.stringify(data[key]))
  }
  for (const key of Object.keys(spec)) {
    if (!isOptional(spec[key]) && !Object.prototype.hasOwnProperty.call(data, key)) problems.push(label + ': missing field "' + key + '"')
  }
  return problems
}

/** Problems with one recorded request (shim.state.requests entry); [] when it is as documented. */
function check(record) {
  let url
  try {
    url = new URL(record.url)
  } catch (e) {
    return ['unparsable URL ' + record.url]
  }
  if (!url.pathname.startsWith('/api/')) return []
  const method = String(record.method || 'GET').toUpperCase()
  const label = method + ' ' + url.pathname
  const doc = DOCUMENTED.find((d) => d.method === method && d.re.test(url.pathname))
  if (!doc) return [label + ': not a documented endpoint']
  const headerProblems = []
  for (const name of Object.keys(doc.headers || {})) {
    const found = Object.keys(record.header || {}).find((k) => k.toLowerCase() === name.toLowerCase())
    if (found === undefined) headerProblems.push(label + ': missing header ' + name)
    else {
      const p = typeProblem(doc.headers[name], record.header[found])
      if (p) headerProblems.push(label + ': header ' + name + ' ' + p + ', got ' + JSON.stringify(record.header[found]))
    }
  }
  return headerProblems.concat(checkRecord(record, doc, method, url, label))
}

function checkRecord(record, doc, method, url, label) {
  if (record.kind === 'upload') {
    if (!doc.form) return [label + ': sent as a multipart upload but documented as JSON']
    const problems = []
    for (const key of Object.keys(record.data || {})) {
      if (!doc.form[key]) problems.push(label + ': undocumented form field "' + key + '"')
      else {
        const p = typeProblem(doc.form[key], record.data[key])
        if (p) problems.push(label + ': ' + key + ' ' + p + ', got ' + JSON.stringify(record.data[key]))
      }
    }
    for (const key of Object.keys(doc.form)) if (!(record.data && key in record.data)) problems.push(label + ': missing form field "' + key + '"')
    return problems
  }
  if (doc.form) return [label + ': documented as a multipart upload']
  if (method === 'GET') {
    const query = Object.assign({}, record.data || {})
    for (const [k, v] of url.searchParams) query[k] = v
    return checkFields(label + ' (query)', doc.query || {}, query)
  }
  const data = record.data
  const empty = data === undefined || data === null || data === ''
  if (doc.body === null) return empty ? [] : [label + ': documented without a body, sent ' + JSON.stringify(data)]
  if (empty) return Object.keys(doc.body).some((k) => !isOptional(doc.body[k])) ? [label + ': no body sent'] : []
  return checkFields(label, doc.body, data)
}

module.exports = { DOCUMENTED, MAX_FEN, PLATE_COLORS, PAYMENT_PURPOSES, check, isOptional }

if (require.main === module) {
  const test = require('node:test')
  const assert = require('node:assert/strict')
  const rec = (method, path, data, kind) => ({ kind: kind || 'request', method, url: 'http://127.0.0.1:8000' + path, data })

  test('request-bodies: documented requests pass', () => {
    assert.deepEqual(check(rec('POST', '/api/v1/contracts', { template: 'privacy_consent' })), [])
    assert.deepEqual(check(rec('POST', '/api/v1/contracts', { template: 'etc_autodebit', subject_id: 7 })), [])
    assert.deepEqual(check(rec('POST', '/api/v1/contracts/12/sign', { signature_upload_id: 3, consent: true, verify_id: 'v-1' })), [])
    assert.deepEqual(check(rec('POST', '/api/v1/identity/face', {})), [])
    assert.deepEqual(check(rec('POST', '/api/v1/identity/face/abc-1/result', undefined)), [])
    assert.deepEqual(check(rec('POST', '/api/v1/auth/logout', undefined)), [])
    assert.deepEqual(check(rec('GET', '/api/v1/contracts?template=privacy_consent&status=signed', { template: 'privacy_consent', status: 'signed' })), [])
    assert.deepEqual(check(rec('POST', '/api/v1/uploads', { kind: 'signature' }, 'upload')), [])
    assert.deepEqual(check(rec('POST', '/sandbox/control/login-code', { anything: 1 })), [], 'only /api/ is checked')
    assert.deepEqual(check(rec('POST', '/api/v1/account-applications', { account_class: 'II' })), [])
    assert.deepEqual(check(rec('POST', '/api/v1/account-applications/3/submit', undefined)), [])
    assert.deepEqual(check(rec('GET', '/api/v1/accounts/3/transactions?limit=20&cursor=17', { limit: 20, cursor: '17' })), [])
    const key = { 'Idempotency-Key': '0b6f2c1e-4a8d-4c3b-9f10-2e7a5d6c8b90' }
    assert.deepEqual(check(Object.assign(rec('POST', '/api/v1/accounts/3/top-ups', { amount_fen: 10000 }), { header: key })), [])
    assert.deepEqual(check(Object.assign(rec('POST', '/api/v1/accounts/3/withdrawals', { amount_fen: 1 }), { header: key })), [])
    assert.deepEqual(check(rec('POST', '/api/v1/vehicles', { plate_number: '粤BD12345', plate_color: 'gradient_green' })), [])
    assert.deepEqual(check(rec('DELETE', '/api/v1/vehicles/4', undefined)), [])
    assert.deepEqual(check(rec('POST', '/api/v1/etc-bindings', { vehicle_id: 4, card_number: '11011234567890123456', account_id: 3 })), [])
    assert.deepEqual(check(rec('POST', '/api/v1/etc-bindings/9/activate', undefined)), [])
    assert.deepEqual(check(rec('DELETE', '/api/v1/etc-bindings/9', undefined)), [])
    assert.deepEqual(check(rec('GET', '/api/v1/etc-bindings/9/debits?limit=20&cursor=17', { limit: 20, cursor: 17 })), [])
  })

  test('request-bodies: vehicle and binding bodies: integer ids, the card number a string, a known colour', () => {
    assert.deepEqual(check(rec('POST', '/api/v1/etc-bindings', { vehicle_id: '4', card_number: '11011234567890123456', account_id: 3 })),
      ['POST /api/v1/etc-bindings: vehicle_id must be a positive integer, got "4"'])
    assert.deepEqual(check(rec('POST', '/api/v1/etc-bindings', { vehicle_id: 4, card_number: 11011234567890123456, account_id: 3 })),
      ['POST /api/v1/etc-bindings: card_number must be a non-empty string, got 11011234567890123000'])
    assert.match(check(rec('POST', '/api/v1/etc-bindings', { vehicle_id: 4, card_number: '11011234567890123456' }))[0], /missing field "account_id"/)
    assert.match(check(rec('POST', '/api/v1/vehicles', { plate_number: '京A12345', plate_color: 'green' }))[0], /plate_color must be one of blue/)
    assert.match(check(rec('POST', '/api/v1/etc-bindings/9/suspend', { now: true }))[0], /documented without a body/)
    assert.match(check(rec('GET', '/api/v1/etc-bindings/9/debits?cursor=0', { cursor: 0 }))[0], /cursor must be a positive integer/)
  })

  test('request-bodies: a WeChat Pay order: a purpose of the enum, the binding as an integer, no amount, the Idempotency-Key', () => {
    const key = { 'Idempotency-Key': '0b6f2c1e-4a8d-4c3b-9f10-2e7a5d6c8b90' }
    const order = (body, header) => check(Object.assign(rec('POST', '/api/v1/payments/orders', body), { header: header || key }))
    assert.deepEqual(order({ purpose: 'arrears', reference_id: 9 }), [])
    assert.deepEqual(order({ purpose: 'obu_fee', reference_id: 9 }), [])
    assert.deepEqual(order({ purpose: 'arrears', reference_id: '9' }), ['POST /api/v1/payments/orders: reference_id must be a positive integer, got "9"'])
    assert.match(order({ purpose: 'fine', reference_id: 9 })[0], /purpose must be one of arrears \/ obu_fee/)
    assert.match(order({ purpose: 'arrears', reference_id: 9, amount_fen: 20000 })[0], /undocumented field "amount_fen"/, 'the amount is the server\'s')
    assert.match(order({ reference_id: 9 })[0], /missing field "purpose"/)
    assert.deepEqual(order({ purpose: 'arrears', reference_id: 9 }, {}), ['POST /api/v1/payments/orders: missing header Idempotency-Key'])
    assert.deepEqual(check(rec('GET', '/api/v1/payments/orders/12', undefined)), [])
    assert.match(check(rec('GET', '/api/v1/payments/orders/12?refresh=1', { refresh: 1 }))[0], /undocumented field "refresh"/)
    assert.match(check(rec('POST', '/api/v1/payments/orders/12/close', {}))[0], /not a documented endpoint/)
  })

  test('request-bodies: the order list (an opaque cursor) and a refund (no amount: all that is left), with the Idempotency-Key', () => {
    assert.deepEqual(check(rec('GET', '/api/v1/payments/orders?limit=20', { limit: 20 })), [])
    assert.deepEqual(check(rec('GET', '/api/v1/payments/orders?limit=20&cursor=b3JkZXI6MjE', { limit: 20, cursor: 'b3JkZXI6MjE' })), [])
    assert.match(check(rec('GET', '/api/v1/payments/orders?status=paid', { status: 'paid' }))[0], /undocumented field "status"/)
    const key = { 'Idempotency-Key': '0b6f2c1e-4a8d-4c3b-9f10-2e7a5d6c8b90' }
    const refund = (body, header) => check(Object.assign(rec('POST', '/api/v1/payments/orders/21/refunds', body), { header: header || key }))
    assert.deepEqual(refund({}), [], 'a full refund')
    assert.deepEqual(refund({ amount_fen: 5000, reason: '设备退回' }), [])
    assert.match(refund({ amount_fen: 50.5 })[0], /amount_fen must be an integer number of fen/)
    assert.match(refund({ amount_fen: '5000' })[0], /amount_fen must be an integer number of fen/)
    assert.match(refund({ order_id: 21 })[0], /undocumented field "order_id"/)
    assert.deepEqual(refund({}, {}), ['POST /api/v1/payments/orders/21/refunds: missing header Idempotency-Key'])
  })

  test('request-bodies: amounts must be integer fen within the bound, the class one of II / III, the key present', () => {
    const key = { 'idempotency-key': 'k-12345678' }
    const topUp = (body, header) => check(Object.assign(rec('POST', '/api/v1/accounts/3/top-ups', body), { header: header || key }))
    assert.match(topUp({ amount_fen: 100.5 })[0], /amount_fen must be an integer number of fen/)
    assert.match(topUp({ amount_fen: '10000' })[0], /amount_fen must be an integer number of fen/)
    assert.match(topUp({ amount_fen: 0 })[0], /amount_fen must be an integer number of fen/)
    assert.match(topUp({ amount_fen: MAX_FEN + 1 })[0], /amount_fen must be an integer number of fen/)
    assert.deepEqual(topUp({ amount_fen: MAX_FEN }), [])
    assert.deepEqual(topUp({ amount_fen: 1 }, {}), ['POST /api/v1/accounts/3/top-ups: missing header Idempotency-Key'])
    assert.match(topUp({ amount_fen: 1 }, { 'Idempotency-Key': 'short' })[0], /header Idempotency-Key must be 8-64/)
    assert.match(check(rec('POST', '/api/v1/account-applications', { account_class: 'I' }))[0], /account_class must be one of II \/ III/)
    assert.match(check(rec('POST', '/api/v1/account-applications', {}))[0], /missing field "account_class"/)
    assert.deepEqual(check(rec('POST', '/api/v1/account-applications', undefined)), ['POST /api/v1/account-applications: no body sent'])
    assert.match(check(rec('GET', '/api/v1/accounts/3/transactions?limit=0', { limit: 0 }))[0], /limit must be a positive integer/)
    assert.match(check(rec('POST', '/api/v1/account-applications/3/submit', { force: true }))[0], /documented without a body/)
  })

  test('request-bodies: unknown fields, string ids, a non-boolean consent and undocumented routes are reported', () => {
    assert.deepEqual(check(rec('POST', '/api/v1/contracts', { template: 'etc_autodebit', subject_id: '7' })),
      ['POST /api/v1/contracts: subject_id must be a positive integer, got "7"'])
    assert.deepEqual(check(rec('POST', '/api/v1/contracts/12/sign', { signature_upload_id: 3, consent: 'true', verify_id: 'v' })),
      ['POST /api/v1/contracts/12/sign: consent must be the boolean true, got "true"'])
    assert.match(check(rec('POST', '/api/v1/identity/bank-card', { card_number: '6222', reserved_phone: '138', name: 'x' }))[0], /undocumented field "name"/)
    assert.match(check(rec('POST', '/api/v1/identity/id-card', { front_upload_id: 1, back_upload_id: 2, name: 'x' }))[0], /missing field "id_number"/)
    assert.match(check(rec('POST', '/api/v1/identity/face', { verify: 1 }))[0], /undocumented field "verify"/)
    assert.match(check(rec('GET', '/api/v1/contracts?sort=new', { sort: 'new' }))[0], /undocumented field "sort"/)
    assert.match(check(rec('POST', '/api/v1/uploads', { kind: 'selfie' }, 'upload'))[0], /kind must be one of/)
    assert.match(check(rec('DELETE', '/api/v1/me'))[0], /not a documented endpoint/)
  })
}
