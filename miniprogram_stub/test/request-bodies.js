/**
 * The requests the mini-program may send, as README.md ("What the API does so far") documents them, and a
 * check of a recorded request (shim.state.requests) against them. The backend refuses unknown JSON fields
 * (422 VALIDATION_ERROR), wants ids as integers and `consent` as the literal true; this catches a page that
 * sends anything else before the server has to.
 *
 *   const bodies = require('./request-bodies')
 *   bodies.check(record)   // → [] or ['POST /api/v1/contracts: subject_id must be a positive integer, got "7"']
 *
 * Field types: 'string' (non-empty), 'id' (a positive safe integer, not a string), 'true' (the boolean true);
 * a trailing '?' marks an optional field. body: null means no body at all; {} means none or an empty object.
 */
'use strict'

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
  { method: 'POST', path: '/api/v1/contracts/:id/sign', body: { signature_upload_id: 'id', consent: 'true', verify_id: 'string' } }
]

function pattern(p) {
  const re = p.replace(/[.]/g, '\\.').replace(/:id\b/g, '[1-9]\\d*').replace(/:verify_id\b/g, '[^/]+')
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
  return 'unknown type ' + t
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
    const optional = typeof spec[key] === 'string' ? spec[key].endsWith('?') : false
    if (!optional && !Object.prototype.hasOwnProperty.call(data, key)) problems.push(label + ': missing field "' + key + '"')
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
  if (empty) return Object.keys(doc.body).some((k) => !doc.body[k].endsWith('?')) ? [label + ': no body sent'] : []
  return checkFields(label, doc.body, data)
}

module.exports = { DOCUMENTED, check }

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
