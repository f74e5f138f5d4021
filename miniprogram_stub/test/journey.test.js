/**
 * End-to-end journey of the mini-program's real page code against a live backend (BASE_URL),
 * with the WeChat emulator's control API standing in for the phone.
 *
 *   BASE_URL=http://127.0.0.1:8000 node --test miniprogram_stub/test/
 *
 * Login and phone binding always run. The identity steps (ID card, face, bank card) are skipped
 * only while their backend routes do not exist yet (404 for the route); any other problem fails.
 * The contract steps (read and e-sign the privacy consent) follow the identity steps and are
 * skipped only while POST /api/v1/contracts answers 404. The account steps follow: open a Class II account
 * (the open page, the account agreement signed for the application, submit), the "account opened" subscribe
 * message, then top-ups and withdrawals through the bound card (the sandbox card network's control API sets the
 * card's balance, blocks it and injects faults) with their Idempotency-Key retries, and the ledger. Then ETC: the
 * same customer registers a car, binds its ETC card to the Class II account, signs the etc_autodebit authorisation on
 * the contract page and activates the binding; a partner (PARTNER_APP_ID / PARTNER_SECRET, made with
 * `python -m app partner create --name 测试高速 --scopes etc:debit,etc:read`; the ETC steps fail without them) debits a
 * toll with requests signed as docs/open-api.md says, and the pages show it; a debit larger than the balance becomes
 * arrears, and unbinding is refused while they are owed. The arrears are then paid with WeChat Pay on the pay page: a first
 * wx.requestPayment cancelled, then the same order paid (the shim plays it on WeChat Pay's emulator) and polled until paid;
 * the debit shows 已补缴, the orders page lists the paid order (已支付, no refund: arrears are not refunded), the balance
 * is unchanged, and unbinding succeeds.
 *
 * Every page is rendered as WeChat would: on load and after each setData (the shim records any render error;
 * show() fails on one), and explicitly after each step with the strict WXML renderer (test/wxml.js), so the
 * tests also check what the user sees. The last tests check that every page of app.json was rendered with
 * live data and that every request the pages sent is documented (test/request-bodies.js).
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const shim = require('./wx-shim')
const bodies = require('./request-bodies')
const path = require('node:path')
const api = require('../utils/api')
const errors = require('../utils/errors')
const money = require('../utils/money')
const etc = require('../utils/etc')
const pay = require('../utils/pay')

const BASE_URL = (process.env.BASE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '')
const PHONE = '13812345678'
const NAME = '张三'

// ---------- tiny generators ----------

/** 18-digit resident ID number with the ISO 7064 MOD 11-2 check character. */
function idNumber(region, birth) {
  const seq = String(Math.floor(Math.random() * 999) + 1).padStart(3, '0')
  const body = (region || '110105') + (birth || '19900101') + seq
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
  let sum = 0
  for (let i = 0; i < 17; i++) sum += Number(body[i]) * weights[i]
  return body + '10X98765432'[sum % 11]
}

function luhnCheckDigit(payload) {
  let sum = 0
  for (let i = 0; i < payload.length; i++) {
    let d = Number(payload[payload.length - 1 - i])
    if (i % 2 === 0) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return String((10 - (sum % 10)) % 10)
}

function luhnValid(number) {
  return luhnCheckDigit(number.slice(0, -1)) === number.slice(-1)
}

/** 19-digit Luhn-valid card number with the given prefix. */
function cardNumber(prefix) {
  prefix = prefix || '622202'
  let payload = prefix
  while (payload.length < 18) payload += String(Math.floor(Math.random() * 10))
  return payload + luhnCheckDigit(payload)
}

// ---------- helpers ----------

async function probe(method, path) {
  const res = await fetch(BASE_URL + path, { method, headers: { 'Content-Type': 'application/json' }, body: method === 'GET' ? undefined : '{}' })
  let code = null
  try {
    const body = await res.json()
    code = body && body.error ? body.error.code : null
  } catch (e) {
    code = null
  }
  return { status: res.status, code }
}

/** Returns why the identity steps cannot run yet (a route answering 404), or null when they can. */
async function identityNotBuilt() {
  const routes = [
    ['POST', '/api/v1/identity/face'],
    ['POST', '/api/v1/identity/id-card'],
    ['POST', '/api/v1/identity/bank-card'],
    ['POST', '/api/v1/uploads'],
    ['POST', '/sandbox/control/id-card-images'],
    ['POST', '/sandbox/control/bank-cards']
  ]
  for (const [method, path] of routes) {
    const r = await probe(method, path)
    if (r.status === 404) return method + ' ' + path + ' answers 404 ' + (r.code || '') + ': identity endpoints not built yet'
  }
  return null
}

/** Returns why the contract steps cannot run yet (POST /api/v1/contracts answering 404), or null. */
async function contractsNotBuilt() {
  const r = await probe('POST', '/api/v1/contracts')
  if (r.status === 404) return 'POST /api/v1/contracts answers 404 ' + (r.code || '') + ': contract endpoints not built yet'
  return null
}

function sha256(buffer) {
  return crypto.createHash('sha256').update(buffer).digest('hex')
}

/** A finger stroke on the signature canvas: touchstart, touchmove…, touchend. */
function drawStroke(page, points) {
  page.onTouchStart({ touches: [{ x: points[0][0], y: points[0][1] }] })
  for (const [x, y] of points.slice(1)) page.onTouchMove({ touches: [{ x, y }] })
  page.onTouchEnd({ touches: [], changedTouches: [] })
}

const STROKE = [[20, 100], [60, 60], [100, 90], [140, 40], [200, 80], [260, 50]]

function pathOf(record) {
  return record.method + ' ' + new URL(record.url).pathname + ' ' + record.statusCode
}

async function idCardImage(side, idNo) {
  const res = await shim.control('id-card-images', { side, name: NAME, id_number: idNo, valid_until: '20400101' }, { raw: true })
  assert.equal(res.status, 200, 'id-card-images ' + side + ': ' + res.buffer.toString('utf8', 0, 300))
  assert.ok(res.buffer.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'id-card-images returns a PNG')
  return shim.writeTempFile(res.buffer, '.png')
}

/**
 * What the user sees now: fails if any render so far (on load, after a setData) threw, then renders the
 * page's WXML with its current data (strict: a binding the data lacks throws) and returns {text, tree, select}.
 */
let renderErrorsSeen = 0

function show(page) {
  // Each render error fails the step where it happened (the last test checks them all again).
  const fresh = shim.state.renderErrors.slice(renderErrorsSeen)
  renderErrorsSeen = shim.state.renderErrors.length
  assert.deepEqual(fresh, [], 'a render of a page failed')
  return shim.render(page)
}

/**
 * The one element of a rendered page a person taps for `label` (its visible text; shim.findTappable): to read
 * its state (disabled) before tapping it with shim.tap(page, label). Fails when nothing or several show `label`.
 */
function tappable(view, label, options) {
  return shim.findTappable(view, label, options)
}

// Taps go through shim.tap(page, label): the button (or row) is found by the text a person sees on the rendered
// page and its bindtap called, so a renamed or hidden button fails the journey. A handler is called directly only
// where no person could tap: a disabled button (the page's own guard), a stale page, a double tap.

function assertShows(view, parts) {
  for (const part of parts) assert.ok(view.text.includes(part), JSON.stringify(part) + ' is not shown in:\n' + view.text)
}

/** GET on the sandbox control API: {status, json, text}. */
async function controlGet(pathname) {
  const res = await fetch(BASE_URL + '/sandbox/control/' + pathname.replace(/^\/+/, ''))
  const text = await res.text()
  let json = null
  try {
    json = JSON.parse(text)
  } catch (e) {
    json = null
  }
  return { status: res.status, json, text }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------- a partner of the open API (docs/open-api.md) ----------

/**
 * The partner whose debits the journey sees: PARTNER_APP_ID and PARTNER_SECRET, made with
 * `python -m app partner create --name 测试高速 --scopes etc:debit,etc:read` against the server's database
 * (tests/e2e/test_miniprogram_journey.py does, and passes them). Fails, saying so, when they are not set.
 */
function partnerCredentials() {
  const appId = process.env.PARTNER_APP_ID || ''
  const secret = process.env.PARTNER_SECRET || ''
  if (!appId || !secret) {
    assert.fail('PARTNER_APP_ID and PARTNER_SECRET are not set: the ETC steps need a partner with the scopes etc:debit,etc:read ' +
      '(python -m app partner create --name 测试高速 --scopes etc:debit,etc:read, with the server\'s DATABASE_URL and VAR_DIR; ' +
      'it prints app_id and secret). tests/e2e/test_miniprogram_journey.py makes one and passes both.')
  }
  return { appId, secret }
}

function hmacHex(secret, text) {
  return crypto.createHmac('sha256', secret).update(text, 'utf8').digest('hex')
}

/** Compares two strings by code point (what "sort by code point" means; JS's < compares UTF-16 units). */
function byCodePoint(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0))
  const y = Array.from(b, (c) => c.codePointAt(0))
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i]
  return x.length - y.length
}

/**
 * CANONICAL_QUERY: split on '&' (empty parts skipped), each part on its first '=', percent-decode as UTF-8 ('+' is a
 * space), sort by name then value, percent-encode every byte but A-Z a-z 0-9 - _ . ~ (capital hex), join.
 */
function canonicalQuery(query) {
  const decode = (s) => decodeURIComponent(s.replace(/\+/g, ' '))
  const encode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
  const pairs = String(query || '').split('&').filter(Boolean).map((part) => {
    const i = part.indexOf('=')
    return i < 0 ? [decode(part), ''] : [decode(part.slice(0, i)), decode(part.slice(i + 1))]
  })
  pairs.sort((p, q) => byCodePoint(p[0], q[0]) || byCodePoint(p[1], q[1]))
  return pairs.map(([n, v]) => encode(n) + '=' + encode(v)).join('&')
}

/** The signed string of a request: METHOD, PATH, CANONICAL_QUERY, TIMESTAMP, NONCE, BODY_SHA256. */
function requestString(method, pathname, query, timestamp, nonce, body) {
  return [method.toUpperCase(), pathname, canonicalQuery(query), timestamp, nonce, sha256(body)].join('\n')
}

/** Whether an answer is the bank's, for the request with this nonce: RESPONSE, STATUS, REQUEST_NONCE, TIMESTAMP, NONCE, BODY_SHA256. */
function responseSignatureOk(secret, status, requestNonce, headers, bytes) {
  const timestamp = headers.get('x-timestamp')
  const nonce = headers.get('x-nonce')
  const signature = headers.get('x-signature') || ''
  if (!timestamp || !nonce || !/^[0-9a-f]{64}$/.test(signature)) return false
  const expected = hmacHex(secret, ['RESPONSE', String(status).padStart(3, '0'), requestNonce, timestamp, nonce, sha256(bytes)].join('\n'))
  return crypto.timingSafeEqual(Buffer.from(signature, 'utf8'), Buffer.from(expected, 'utf8'))
}

/**
 * A signed partner request (X-App-Id, X-Timestamp, X-Nonce, X-Signature); checks the answer's signature.
 * Returns {status, headers, bytes, text, json, signed: the answer's signature verifies, nonce: the request's}.
 */
async function partnerCall(method, pathAndQuery, body) {
  const { appId, secret } = partnerCredentials()
  const url = new URL(BASE_URL + pathAndQuery)
  const payload = Buffer.from(body === undefined ? '' : JSON.stringify(body), 'utf8')
  const timestamp = String(Math.floor(Date.now() / 1000))
  const nonce = crypto.randomBytes(24).toString('base64url') // 32 characters of A-Z a-z 0-9 _ -
  const headers = {
    'X-App-Id': appId,
    'X-Timestamp': timestamp,
    'X-Nonce': nonce,
    'X-Signature': hmacHex(secret, requestString(method, url.pathname, url.search.replace(/^\?/, ''), timestamp, nonce, payload))
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : payload })
  const bytes = Buffer.from(await res.arrayBuffer())
  const text = bytes.toString('utf8')
  let json = null
  try {
    json = JSON.parse(text)
  } catch (e) {
    json = null
  }
  return { status: res.status, headers: res.headers, bytes, text, json, nonce, signed: responseSignatureOk(secret, res.status, nonce, res.headers, bytes) }
}

/** An RFC 3339 time in China Standard Time (+08:00), e.g. a minute ago. */
function cstTime(date) {
  return new Date(date.getTime() + 8 * 3600 * 1000).toISOString().slice(0, 19) + '+08:00'
}

const digits = (n) => Array.from({ length: n }, () => String(crypto.randomInt(10))).join('')

/**
 * The next POST whose path matches reaches the server and is processed, but its answer is lost on the way
 * back: wx.request calls fail (request:fail timeout) instead of success. Returns a function that undoes it.
 */
function loseNextAnswer(pathPattern) {
  const real = shim.wx.request
  let armed = true
  shim.wx.request = function (opts) {
    if (armed && String(opts.method || 'GET').toUpperCase() === 'POST' && pathPattern.test(new URL(opts.url).pathname)) {
      armed = false
      return real.call(this, Object.assign({}, opts, {
        success() {
          if (typeof opts.fail === 'function') opts.fail({ errMsg: 'request:fail timeout', errno: 5 })
        }
      }))
    }
    return real.call(this, opts)
  }
  return () => {
    shim.wx.request = real
  }
}

function describeError(page) {
  return 'page error: ' + JSON.stringify(page.data.error) + ' toasts: ' + JSON.stringify(shim.state.toasts.slice(-3))
}

// ---------- self-check of the generators ----------

test('generators: ID check character and Luhn', () => {
  // GB 11643 example number.
  assert.equal(idNumber('110105', '19491231').slice(0, 14), '11010519491231')
  const known = '11010519491231002'
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
  let sum = 0
  for (let i = 0; i < 17; i++) sum += Number(known[i]) * weights[i]
  assert.equal('10X98765432'[sum % 11], 'X')
  for (let i = 0; i < 20; i++) {
    const c = cardNumber('622202')
    assert.equal(c.length, 19)
    assert.ok(c.startsWith('622202'))
    assert.ok(luhnValid(c))
  }
  assert.ok(luhnValid('4111111111111111'))
})

test('partner signing: the canonical query and the signed strings of docs/open-api.md (values from services/partners/signing.py)', () => {
  assert.equal(canonicalQuery('date=2026-11-30'), 'date=2026-11-30')
  assert.equal(canonicalQuery('b=2&a=1&a=0'), 'a=0&a=1&b=2')
  assert.equal(canonicalQuery('x=a+b&y=%E4%B8%AD&&z'), 'x=a%20b&y=%E4%B8%AD&z=')
  assert.equal(canonicalQuery("n=%7E!*()'"), 'n=~%21%2A%28%29%27')
  assert.equal(canonicalQuery('k=%F0%9F%98%80&k=%EF%BD%81'), 'k=%EF%BD%81&k=%F0%9F%98%80', 'sorted by code point, not UTF-16 unit')
  assert.equal(canonicalQuery(''), '')
  const text = requestString('post', '/open/v1/debits', '', '1764460800', 'abcdefghijklmnop1234', Buffer.from('{"a":1}'))
  assert.equal(text, 'POST\n/open/v1/debits\n\n1764460800\nabcdefghijklmnop1234\n015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862')
  assert.equal(hmacHex('sk_test', text), 'ff0718d73456bdefd015b8a3aa7f028012b1689394a340c008601d37f98b505f')
  const answer = new Headers({ 'X-Timestamp': '1764460801', 'X-Nonce': 'zyxwvutsrqponmlk9876', 'X-Signature': 'c74d2e760e12e16e4ae682d698d0a6375a145a4936a36a8cda145b1175ac0b96' })
  assert.equal(responseSignatureOk('sk_test', 201, 'abcdefghijklmnop1234', answer, Buffer.from('{}')), true)
  assert.equal(responseSignatureOk('sk_test', 201, 'another-request-nonce', answer, Buffer.from('{}')), false, 'bound to the request')
  assert.equal(responseSignatureOk('sk_test', 200, 'abcdefghijklmnop1234', answer, Buffer.from('{}')), false, 'and to the status')
  assert.equal(responseSignatureOk('sk_test', 201, 'abcdefghijklmnop1234', answer, Buffer.from('{ }')), false, 'and to the body')
  assert.equal(cstTime(new Date('2026-11-30T00:00:30Z')), '2026-11-30T08:00:30+08:00')
})

// ---------- the journey ----------

test('mini-program journey against the live backend', async (t) => {
  shim.install({ baseUrl: BASE_URL })
  shim.reset()
  const wx = shim.wx

  await t.test('login page: 微信登录 loads the user from /api/v1/me', async () => {
    const page = shim.loadPage('pages/login/login')
    await page.onLoad({})
    assert.equal(page.data.user, null, 'not logged in before tapping')
    await shim.tap(page, '微信登录')
    assert.ok(page.data.user, describeError(page))
    assert.ok(page.data.user.id !== undefined && page.data.user.id !== null, 'user has an id')
    assert.ok(!page.data.user.phone, 'a new user has no phone yet')
    assert.equal(page.data.phone, '')
    assert.equal(page.data.error, null)
    assert.ok(wx.getStorageSync('access_token'), 'access token stored')
    assert.ok(wx.getStorageSync('refresh_token'), 'refresh token stored')
    const login = shim.state.requests.find((r) => r.url.endsWith('/api/v1/auth/login'))
    assert.equal(login.statusCode, 200)
    assert.ok(!login.header.Authorization, 'login is not sent with a bearer token')
    const me = shim.state.requests.find((r) => r.url.endsWith('/api/v1/me'))
    assert.equal(me.header.Authorization, 'Bearer ' + wx.getStorageSync('access_token'))
    assert.match(me.header['X-Request-ID'], /^[0-9a-f]{32}$/)
    const view = show(page)
    assertShows(view, ['用户编号\n' + page.data.user.id, '手机号\n未绑定', '授权手机号', '返回首页'])
  })

  await t.test('login page: getPhoneNumber binds the phone and shows it masked', async () => {
    const page = shim.loadPage('pages/login/login')
    await page.onLoad({})
    assert.ok(page.data.user, 'onLoad reads /api/v1/me when logged in: ' + describeError(page))

    const before = shim.state.requests.length
    await shim.tap(page, '授权手机号', { detail: { errMsg: 'getPhoneNumber:fail user deny' } })
    assert.equal(shim.state.requests.length, before, 'a denied authorisation makes no request')
    assert.equal(shim.lastToast().title, '需要授权手机号才能继续办理')

    const res = await shim.control('phone-code', { phone: PHONE })
    assert.equal(res.status, 200, res.text)
    assert.ok(res.json.code, 'phone-code returns a code')
    await shim.tap(page, '授权手机号', { detail: { errMsg: 'getPhoneNumber:ok', code: res.json.code } })
    assert.equal(page.data.phone, '138****5678', describeError(page))
    assert.equal(page.data.user.phone, '138****5678')
    assert.equal(page.data.error, null)
    const view = show(page)
    assertShows(view, ['手机号\n138****5678', '更换手机号'])
    assert.ok(!view.text.includes(PHONE), 'the full phone number is never shown')
  })

  await t.test('index page shows the login state and progress', async () => {
    const page = shim.loadPage('pages/index/index')
    await page.onShow()
    assert.equal(page.data.loggedIn, true, describeError(page))
    assert.equal(page.data.user.phone, '138****5678')
    const steps = Object.fromEntries(page.data.steps.map((s) => [s.key, s]))
    assert.equal(steps.login.done, true)
    assert.equal(steps.phone.done, true)
    assert.ok(page.data.doneCount >= 2)
    const view = show(page)
    assertShows(view, ['已登录', '手机号\n138****5678', '进度\n' + page.data.doneCount + ' / 6', '1. 微信登录\n已完成', '2. 绑定手机号\n138****5678\n已完成'])
    // Each step row carries its url and locked flag into the tap event's dataset.
    const rows = view.select('view.row').filter((r) => r.events.bindtap === 'goStep')
    assert.deepEqual(rows.map((r) => r.dataset.url), page.data.steps.map((s) => s.url))
    assert.deepEqual(rows.map((r) => r.dataset.locked), page.data.steps.map((s) => s.locked))
    shim.tap(page, '3. 身份证识别')
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/identity/idcard/idcard' })
    shim.tap(page, '去完成 >', { within: '身份证识别' }) // the row's status text: the tap bubbles to the row
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/identity/idcard/idcard' })
  })

  await t.test('identity: ID card, face and bank card', async (t) => {
    const missing = await identityNotBuilt()
    if (missing) {
      t.skip(missing)
      return
    }
    const idNo = idNumber('110105', '19900101')

    await t.test('ID card: a typed name that differs from the card is refused as ID_MISMATCH', async () => {
      const page = shim.loadPage('pages/identity/idcard/idcard')
      shim.queueMedia(await idCardImage('front', idNo))
      shim.queueMedia(await idCardImage('back', idNo))
      await shim.tap(page, '点击拍摄人像面')
      await shim.tap(page, '点击拍摄国徽面')
      assert.ok(page.data.frontUploadId && page.data.backUploadId, describeError(page))
      page.onNameInput({ detail: { value: '李四' } })
      page.onIdNumberInput({ detail: { value: idNo } })
      await shim.tap(page, '提交核验')
      assert.equal(page.data.result, null)
      assert.equal(page.data.error && page.data.error.code, 'ID_MISMATCH', describeError(page))
      assert.equal(shim.lastToast().title, '身份证信息与输入不一致')
      assertShows(show(page), ['身份证信息与输入不一致'])
    })

    await t.test('ID card: upload both sides, submit, see masked name and number', async () => {
      const page = shim.loadPage('pages/identity/idcard/idcard')
      await shim.tap(page, '提交核验')
      assert.equal(shim.lastToast().title, '请上传身份证人像面照片', 'the form is checked before any request')

      shim.queueMedia(await idCardImage('front', idNo))
      shim.queueMedia(await idCardImage('back', idNo))
      const frontId = await shim.tap(page, '点击拍摄人像面')
      const backId = await shim.tap(page, '点击拍摄国徽面')
      assert.ok(frontId, describeError(page))
      assert.ok(backId, describeError(page))
      assert.notEqual(frontId, backId)
      const uploads = shim.state.requests.filter((r) => r.kind === 'upload').slice(-2)
      assert.deepEqual(uploads.map((u) => u.data.kind), ['id_front', 'id_back'])
      assert.deepEqual(uploads.map((u) => u.statusCode), [201, 201])

      page.onNameInput({ detail: { value: ' ' + NAME + ' ' } })
      page.onIdNumberInput({ detail: { value: idNo.toLowerCase() } })
      const result = await shim.tap(page, '提交核验')
      assert.ok(result, describeError(page))
      assert.equal(result.verified, true)
      assert.notEqual(result.name, NAME, 'name is masked')
      // Masked name: same length, '*' for the hidden part, one real character kept (张* or *三).
      assert.equal(result.name.length, NAME.length, 'masked name: ' + result.name)
      assert.ok(result.name.includes('*') && [...result.name].some((ch, i) => ch === NAME[i]), 'masked name: ' + result.name)
      assert.notEqual(result.id_number, idNo, 'ID number is masked')
      assert.ok(result.id_number.startsWith(idNo.slice(0, 4)) && result.id_number.includes('*'), 'masked ID: ' + result.id_number)
      assert.equal(result.id_number.length, 18)
      assert.match(String(result.valid_until), /^2040-?01-?01/)
      assert.deepEqual(page.data.result, result)
      const view = show(page)
      assertShows(view, ['已上传', '核验结果\n通过', '姓名\n' + result.name, '身份证号\n' + result.id_number, '有效期至\n' + result.valid_until, '下一步：人脸核身'])
      assert.deepEqual(view.select('image').map((i) => i.attrs.src), [page.data.frontPath, page.data.backPath])
      assert.ok(!view.text.includes(idNo), 'the full ID number is not shown')
    })

    await t.test('face: a failed match is shown as not passed, then a pass', async () => {
      const page = shim.loadPage('pages/identity/face/face')
      page.onLoad({})
      assert.equal(page.data.supported, true, 'the declared base library has wx.requestFacialVerify')
      shim.state.faceResult = 'fail'
      const failed = await shim.tap(page, '开始人脸核身')
      assert.ok(failed, describeError(page))
      assert.equal(failed.passed, false)
      assert.equal(page.clientResult.ok, false, 'wx.requestFacialVerify reported fail')
      assertShows(show(page), ['核身结果\n未通过', '请确认是本人操作后重试。'])

      shim.state.faceResult = 'pass'
      const passed = await shim.tap(page, '开始人脸核身')
      assert.ok(passed, describeError(page))
      assert.equal(passed.passed, true)
      assert.ok(page.data.verifyId, 'verify_id kept on the page')
      assert.equal(page.data.result.passed, true)
      assert.equal(page.clientResult.ok, true)
      const view = show(page)
      assertShows(view, ['核身结果\n通过', '下一步：验证银行卡'])
      assert.equal(tappable(view, '开始人脸核身').attrs.disabled, false)
    })

    await t.test('bank card: a Class II card is refused, a Class I card in the same name passes', async () => {
      const classTwo = cardNumber('622202')
      let res = await shim.control('bank-cards', { card_number: classTwo, name: NAME, id_number: idNo, phone: PHONE, card_class: 'II' })
      assert.ok(res.status >= 200 && res.status < 300, res.text)
      let page = shim.loadPage('pages/identity/bankcard/bankcard')
      page.onCardInput({ detail: { value: classTwo } })
      page.onPhoneInput({ detail: { value: PHONE } })
      await shim.tap(page, '提交验证')
      assert.equal(page.data.result, null)
      assert.equal(page.data.error && page.data.error.code, 'CARD_CLASS_NOT_ALLOWED', describeError(page))
      assert.equal(shim.lastToast().title, '请使用本人名下的一类借记卡或信用卡')
      assertShows(show(page), ['请使用本人名下的一类借记卡或信用卡'])

      const card = cardNumber('622202')
      res = await shim.control('bank-cards', { card_number: card, name: NAME, id_number: idNo, phone: PHONE, card_class: 'I' })
      assert.ok(res.status >= 200 && res.status < 300, res.text)
      page = shim.loadPage('pages/identity/bankcard/bankcard')
      page.onCardInput({ detail: { value: card.replace(/(\d{4})/g, '$1 ') } })
      page.onPhoneInput({ detail: { value: PHONE } })
      const result = await shim.tap(page, '提交验证')
      assert.ok(result, describeError(page))
      assert.equal(result.verified, true)
      assert.match(result.card_number, /^622202\*+\d{0,4}$/, 'masked card: ' + result.card_number)
      assert.ok(!result.card_number.includes(card.slice(6, 15)), 'middle digits hidden')
      if (/\d{4}$/.test(result.card_number)) assert.ok(result.card_number.endsWith(card.slice(-4)))
      assert.ok(result.card_class, 'card_class present')
      assert.ok(result.bank_name, 'bank_name present')
      const view = show(page)
      assertShows(view, ['验证结果\n通过', '发卡行\n' + result.bank_name, '卡号\n' + result.card_number, '卡类别\n' + result.card_class, '返回首页'])
      assert.ok(!view.text.includes(card), 'the full card number is not shown')
    })

    await t.test('index page shows the identity steps done', async () => {
      const page = shim.loadPage('pages/index/index')
      await page.onShow()
      assert.equal(page.data.loggedIn, true, describeError(page))
      const me = page.data.user
      if (!me.identity) {
        t.diagnostic('GET /api/v1/me has no identity part yet; progress check skipped')
        return
      }
      const steps = Object.fromEntries(page.data.steps.map((s) => [s.key, s]))
      assert.equal(steps.id_card.done, true, JSON.stringify(me.identity))
      assert.equal(steps.face.done, true, JSON.stringify(me.identity))
      assert.equal(steps.bank_card.done, true, JSON.stringify(me.identity))
      assert.equal(page.data.doneCount, 5)
      assert.equal(steps.contract.done, false)
      assert.equal(steps.contract.locked, false, '签署协议 unlocks once identity is done')
      const view = show(page)
      assertShows(view, ['姓名\n' + me.identity.name, '进度\n5 / 6', '5. 本人银行卡验证\n' + me.identity.bank_card.card_number + '\n已完成',
        '6. 签署协议\n个人信息处理授权同意书\n去完成 >'])
      assert.ok(!view.text.includes(NAME), 'the name is shown masked')
    })

    await t.test('contract: read and e-sign the privacy consent', async (t) => {
      const missing = await contractsNotBuilt()
      if (missing) {
        t.skip(missing)
        return
      }
      const page = shim.loadPage('pages/contract/contract')
      let contract = null
      let signed = null

      await t.test('index links 签署协议 to the contract page', async () => {
        const index = shim.loadPage('pages/index/index')
        await index.onShow()
        const step = index.data.steps.find((s) => s.key === 'contract')
        assert.ok(step, 'a 签署协议 step')
        assert.equal(step.title, '签署协议')
        index.goStep({ currentTarget: { dataset: { url: step.url, locked: false } } })
        assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/contract/contract?template=privacy_consent' })
        index.goStep({ currentTarget: { dataset: { url: step.url, locked: true } } })
        assert.equal(shim.lastToast().title, '请先完成身份核验', 'a locked step does not navigate')
        assert.equal(shim.state.navigations.length, 0)
      })

      await t.test('load: title, version, contract_no and the SHA-256 of the unsigned PDF', async () => {
        contract = await page.onLoad({ template: 'privacy_consent' })
        assert.ok(contract, describeError(page))
        const prepare = shim.state.requests.filter((r) => r.url.endsWith('/api/v1/contracts')).pop()
        assert.deepEqual(prepare.data, { template: 'privacy_consent' }, 'no subject_id for the privacy consent')
        assert.ok([200, 201].includes(prepare.statusCode))
        assert.equal(contract.template, 'privacy_consent')
        assert.equal(contract.status, 'draft')
        assert.match(contract.sha256, /^[0-9a-f]{64}$/)
        assert.equal(contract.signed_sha256, null)
        assert.ok(contract.contract_no && contract.version, JSON.stringify(contract))
        assert.deepEqual(page.data.contract, contract)
        assert.equal(page.data.title, '个人信息处理授权同意书')
        assert.equal(page.data.signed, false)
        assert.ok(page.data.expiresAt, 'expiry shown')

        const canvas = await page.onReady()
        assert.ok(canvas, 'the #signature canvas node')
        assert.equal(canvas.width, 300 * 2, 'canvas sized by the pixel ratio')

        const view = show(page)
        assertShows(view, ['个人信息处理授权同意书', '版本\n' + contract.version, '协议编号\n' + contract.contract_no, '请于此前签署\n' + page.data.expiresAt,
          '协议文件指纹（SHA-256）\n' + contract.sha256, '查看合同', '尚未签名', '我已阅读并同意《个人信息处理授权同意书》', '同意并签署'])
        assert.equal(view.select('canvas#signature').length, 1, 'the signature canvas is on the page')
        assert.equal(tappable(view, '同意并签署').attrs.disabled, true, 'no signing before consent')
        assert.ok(!view.text.includes('签署成功'))

        // Opening the page again gives the same draft (200), not a new contract.
        const again = shim.loadPage('pages/contract/contract')
        const same = await again.onLoad({ template: 'privacy_consent' })
        assert.ok(same, describeError(again))
        assert.equal(same.id, contract.id)
        assert.equal(same.sha256, contract.sha256)
        assert.equal(shim.state.requests.filter((r) => r.url.endsWith('/api/v1/contracts')).pop().statusCode, 200)
        assertShows(show(again), ['协议编号\n' + contract.contract_no, contract.sha256])
      })

      await t.test('查看合同: the downloaded PDF hashes to the SHA-256 shown', async () => {
        const opened = await shim.tap(page, '查看合同')
        assert.ok(opened, describeError(page))
        const bytes = fs.readFileSync(opened.filePath)
        assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-')
        assert.equal(sha256(bytes), contract.sha256, 'the PDF is the document whose hash the user is shown')
        assert.equal(opened.sha256, contract.sha256, 'X-Content-SHA256')
        const download = shim.state.requests.filter((r) => r.kind === 'download').pop()
        assert.equal(new URL(download.url).pathname, '/api/v1/contracts/' + contract.id + '/pdf')
        assert.equal(download.header.Authorization, 'Bearer ' + shim.wx.getStorageSync('access_token'))
        assert.equal(download.statusCode, 200)
        assert.deepEqual(shim.state.documents.pop(), { filePath: opened.filePath, fileType: 'pdf', showMenu: false })
        assert.equal(page.data.pdfPath, opened.filePath)
        assert.equal(tappable(show(page), '查看合同').attrs.disabled, false, 'the download is over')
      })

      await t.test('signing is refused on the page without consent or without a signature (no request)', async () => {
        drawStroke(page, STROKE)
        assert.equal(page.data.hasSignature, true)
        assertShows(show(page), ['已签名'])
        let before = shim.state.requests.length
        // 同意并签署 is disabled without consent: the page's own guard, called directly
        assert.equal(await page.onSign(), null)
        assert.equal(shim.state.requests.length, before, 'no request without consent')
        assert.equal(shim.lastToast().title, '请先阅读并同意协议')
        assert.equal(page.data.error.code, 'CONSENT_REQUIRED')

        page.onConsentChange({ detail: { value: ['agree'] } })
        assert.equal(page.data.consent, true)
        let view = show(page)
        assert.equal(view.select('checkbox')[0].attrs.checked, true)
        assert.equal(tappable(view, '同意并签署').attrs.disabled, false, 'consent enables signing')
        shim.tap(page, '重写')
        assert.equal(page.data.hasSignature, false, '重写 clears the signature')
        view = show(page)
        assertShows(view, ['尚未签名', '请先阅读并同意协议'])
        assert.ok(shim.canvas('signature').ops.some((op) => op[0] === 'clearRect'))
        before = shim.state.requests.length
        assert.equal(await shim.tap(page, '同意并签署'), null)
        assert.equal(shim.state.requests.length, before, 'no request without a signature')
        assert.equal(shim.lastToast().title, '请先手写签名')

        page.onConsentChange({ detail: { value: [] } })
        assert.equal(page.data.consent, false, 'unticking withdraws consent')
      })

      await t.test('a blank signature image is refused as SIGNATURE_IMAGE_INVALID', async () => {
        shim.setCanvasImage(shim.writeTempFile(shim.signaturePng({ width: 200, height: 80, stroke: false }), '.png'))
        page.onConsentChange({ detail: { value: ['agree'] } })
        drawStroke(page, STROKE)
        assert.equal(await shim.tap(page, '同意并签署'), null)
        assert.equal(page.data.error && page.data.error.code, 'SIGNATURE_IMAGE_INVALID', describeError(page))
        assert.equal(shim.lastToast().title, '请重新手写签名')
        assertShows(show(page), ['请重新手写签名', '尚未签名'])
        assert.equal(page.data.hasSignature, false, 'the canvas is cleared for a new signature')
        assert.equal(page.data.signed, false)
        assert.equal(page.data.signing, false)
      })

      await t.test('a face check whose result was never fetched is refused as FACE_VERIFICATION_PENDING, and the page says so', async () => {
        const upload = await api.upload({ url: '/api/v1/uploads', filePath: shim.writeTempFile(shim.signaturePng(), '.png'), name: 'file', formData: { kind: 'signature' } })
        const started = await api.request({ url: '/api/v1/identity/face', method: 'POST', data: {} })
        // The user finished it in WeChat, but nobody asked the backend for the result.
        const finished = await shim.control('face/' + encodeURIComponent(started.verify_id), { result: 'pass' })
        assert.ok(finished.status >= 200 && finished.status < 300, finished.text)
        const from = shim.state.requests.length
        const result = await page.submitSign({ contractId: contract.id, body: { signature_upload_id: upload.id, consent: true, verify_id: started.verify_id } })
        assert.equal(result, null)
        const call = shim.state.requests.slice(from).pop()
        assert.equal(pathOf(call), 'POST /api/v1/contracts/' + contract.id + '/sign 422')
        assert.equal(call.response.error.code, 'FACE_VERIFICATION_PENDING', 'backend: ' + JSON.stringify(call.response))
        assert.equal(page.data.error.code, 'FACE_VERIFICATION_PENDING')
        assert.equal(page.data.error.message, errors.MESSAGES.FACE_VERIFICATION_PENDING)
        assert.equal(shim.lastToast().title, '人脸核验结果尚未确认，请完成人脸核验后重试')
        assert.equal(page.data.signed, false)
        assert.equal(page.data.signing, false)
        const view = show(page)
        assertShows(view, ['人脸核验结果尚未确认，请完成人脸核验后重试', '同意并签署'])
        assert.ok(!view.text.includes(errors.MESSAGES.FACE_VERIFICATION_STALE), 'not the "stale" message')
      })

      await t.test('consent + handwritten signature + face → signed', async () => {
        shim.setCanvasImage(shim.writeTempFile(shim.signaturePng({ width: 200, height: 80 }), '.png'))
        drawStroke(page, STROKE)
        assert.ok(shim.canvas('signature').ops.some((op) => op[0] === 'lineTo'), 'strokes drawn on the 2d context')
        shim.state.faceResult = 'pass'
        const from = shim.state.requests.length
        signed = await shim.tap(page, '同意并签署')
        assert.ok(signed, describeError(page))
        const calls = shim.state.requests.slice(from)
        // Signature first, then the face intent check right before signing.
        assert.deepEqual(calls.map(pathOf), [
          'POST /api/v1/uploads 201',
          'POST /api/v1/identity/face 201',
          'POST /api/v1/identity/face/' + page.data.verifyId + '/result 200',
          'POST /api/v1/contracts/' + contract.id + '/sign 200'
        ])
        assert.equal(calls[0].data.kind, 'signature')
        assert.equal(shim.state.canvasExports.pop().canvas, 'signature', 'canvasToTempFilePath({canvas}) on #signature')
        const signUpload = JSON.parse(calls[0].response)
        assert.deepEqual(calls[3].data, { signature_upload_id: signUpload.id, consent: true, verify_id: page.data.verifyId })

        assert.equal(signed.status, 'signed')
        assert.equal(signed.id, contract.id)
        assert.equal(signed.contract_no, contract.contract_no)
        assert.equal(signed.sha256, contract.sha256, 'the unsigned hash does not change')
        assert.match(signed.signed_sha256, /^[0-9a-f]{64}$/)
        assert.notEqual(signed.signed_sha256, contract.sha256)
        assert.ok(signed.signed_at)
        assert.equal(page.data.signed, true)
        assert.equal(page.data.error, null)
        assert.ok(page.data.signedAt)
        assert.ok(shim.state.toasts.some((x) => x.title === '签署成功'))
        const view = show(page)
        assertShows(view, ['签署成功', '签署时间\n' + page.data.signedAt, '已签署文件指纹（SHA-256）\n' + signed.signed_sha256,
          '协议文件指纹（SHA-256）\n' + contract.sha256, '查看已签署合同', '查看签署存证'])
        assert.ok(!view.text.includes('同意并签署'), 'the signing form is gone once signed')
        assert.equal(view.select('canvas').length, 0)
        assert.ok(!view.text.includes('请于此前签署'))

        const opened = await shim.tap(page, '查看已签署合同')
        assert.ok(opened, describeError(page))
        const bytes = fs.readFileSync(opened.filePath)
        assert.equal(bytes.subarray(0, 4).toString('latin1'), '%PDF')
        assert.equal(sha256(bytes), signed.signed_sha256, 'the signed PDF hashes to signed_sha256')
        const download = shim.state.requests.filter((r) => r.kind === 'download').pop()
        assert.equal(new URL(download.url).pathname, '/api/v1/contracts/' + contract.id + '/signed.pdf')
        assert.equal(shim.state.documents.pop().filePath, opened.filePath)
      })

      await t.test('signing again on the same page still shows signed (the backend is idempotent)', async () => {
        const from = shim.state.requests.length
        const again = await page.onSign()
        assert.ok(again, describeError(page))
        assert.deepEqual(shim.state.requests.slice(from).map(pathOf), ['POST /api/v1/contracts/' + contract.id + '/sign 200'])
        assert.equal(again.status, 'signed')
        assert.equal(again.signed_sha256, signed.signed_sha256)
        assert.equal(again.signed_at, signed.signed_at)
        assert.equal(page.data.signed, true)
        assert.equal(page.data.contract.signed_sha256, signed.signed_sha256)
        assert.equal(page.data.error, null)
        assertShows(show(page), ['签署成功', signed.signed_sha256])
      })

      await t.test('evidence: hashes, the masked signer, the face intent check and the audit events', async () => {
        const body = await page.onShowEvidence()
        assert.ok(body, describeError(page))
        const ev = body.evidence
        assert.equal(ev.unsigned_sha256, contract.sha256)
        assert.equal(ev.signed_sha256, signed.signed_sha256)
        assert.equal(ev.intent_check.verify_id, page.data.verifyId)
        assert.ok(ev.signer.name.includes('*') && ev.signer.name !== NAME, 'masked signer: ' + ev.signer.name)
        assert.ok(ev.signer.id_number.includes('*'), 'masked ID: ' + ev.signer.id_number)
        assert.ok(ev.signed_at)
        assert.ok(body.events.length >= 2, JSON.stringify(body.events))
        for (const e of body.events) assert.match(e.hash, /^[0-9a-f]{64}$/)
        assert.deepEqual(body.events.map((e) => e.seq), body.events.map((e) => e.seq).slice().sort((a, b) => a - b))
        assert.equal(page.data.events.length, body.events.length)
        assert.equal(page.data.evidence.signed_sha256, signed.signed_sha256)
        const view = show(page)
        assertShows(view, ['签署存证', '签署人\n' + ev.signer.name, '证件号码\n' + ev.signer.id_number, '签署时间\n' + page.data.evidence.signedAtText,
          '意愿核验\n' + ev.intent_check.verify_id, '签署前文件 SHA-256\n' + contract.sha256, '签署后文件 SHA-256\n' + signed.signed_sha256])
        for (const e of page.data.events) assertShows(view, [e.seq + '. ' + e.action + '\n' + e.shortHash + '…'])
        assert.ok(!view.text.includes(NAME), 'the signer is shown masked')
      })

      await t.test('POST /api/v1/contracts/verify recognises the signed PDF as the issued copy', async () => {
        const bytes = fs.readFileSync(page.data.signedPdfPath)
        const verify = (body) => fetch(BASE_URL + '/api/v1/contracts/verify', {
          method: 'POST',
          headers: { 'Content-Type': 'application/pdf', Authorization: 'Bearer ' + shim.wx.getStorageSync('access_token') },
          body
        })
        const res = await verify(bytes)
        const text = await res.text()
        assert.equal(res.status, 200, text)
        const json = JSON.parse(text)
        assert.equal(json.ok, true, text)
        assert.equal(json.contract.contract_no, contract.contract_no)
        assert.equal(json.contract.matches_issued_copy, true)

        // One byte more is no longer the copy the bank issued.
        const changed = await verify(Buffer.concat([bytes, Buffer.from('\n')]))
        const changedText = await changed.text()
        assert.equal(changed.status, 200, changedText)
        assert.equal(JSON.parse(changedText).contract.matches_issued_copy, false, changedText)
      })

      /** The index's request for the signed privacy consent list (the last one since `from`). */
      function consentListCall(from) {
        return shim.state.requests.slice(from).filter((r) => r.kind === 'request' && new URL(r.url).pathname === '/api/v1/contracts' && r.method === 'GET').pop()
      }

      await t.test('index shows 签署协议 done with the contract_no from the server', async () => {
        const from = shim.state.requests.length
        const index = shim.loadPage('pages/index/index')
        await index.onShow()
        assert.equal(index.data.error, null, describeError(index))
        const call = consentListCall(from)
        assert.ok(call, 'the index asks GET /api/v1/contracts')
        const query = new URL(call.url).searchParams
        assert.equal(query.get('template'), 'privacy_consent')
        assert.equal(query.get('status'), 'signed')
        assert.equal(call.statusCode, 200)
        assert.equal(call.header.Authorization, 'Bearer ' + shim.wx.getStorageSync('access_token'))
        const listed = call.response.contracts
        assert.equal(listed[0].contract_no, contract.contract_no, 'newest signed consent first')
        const step = index.data.steps.find((s) => s.key === 'contract')
        assert.equal(step.done, true)
        assert.equal(step.note, '协议编号 ' + contract.contract_no)
        if (index.data.user.identity) assert.equal(index.data.doneCount, 6)
        assertShows(show(index), ['6. 签署协议\n协议编号 ' + contract.contract_no + '\n已完成', '进度\n6 / 6'])
        assert.deepEqual([...shim.state.storage.keys()].sort(), ['access_token', 'device_id', 'refresh_token'], 'nothing but the tokens and the device id is kept on the device')
      })

      await t.test('fresh storage, same WeChat user: 签署协议 is still done (server truth)', async () => {
        const before = shim.loadPage('pages/index/index')
        await before.onShow()
        const id = before.data.user.id
        const openid = shim.state.openid

        shim.wx.clearStorageSync()
        const loggedOut = shim.loadPage('pages/index/index')
        await loggedOut.onShow()
        assert.equal(loggedOut.data.loggedIn, false)
        assert.equal(loggedOut.data.steps.find((s) => s.key === 'contract').done, false, 'not done while logged out')
        const outView = show(loggedOut)
        assertShows(outView, ['请先使用微信登录，再按步骤完成身份核验。', '微信登录'])
        assert.ok(!outView.text.includes('退出登录'))

        const login = shim.loadPage('pages/login/login')
        const from = shim.state.requests.length
        await login.onTapLogin()
        assert.equal(shim.state.openid, openid, 'wx.login asks the control API for a code for the same openid')
        assert.ok(login.data.user, describeError(login))
        assert.equal(login.data.user.id, id, 'the same backend user')
        assertShows(show(login), ['用户编号\n' + id, '手机号\n138****5678'])
        assert.ok(shim.state.requests.slice(from).some((r) => r.url.endsWith('/api/v1/auth/login') && r.statusCode === 200))

        const index = shim.loadPage('pages/index/index')
        await index.onShow()
        assert.equal(index.data.loggedIn, true, describeError(index))
        const step = index.data.steps.find((s) => s.key === 'contract')
        assert.equal(step.done, true, 'done on a device that never signed')
        assert.equal(step.note, '协议编号 ' + contract.contract_no)
        assert.equal(step.locked, false)
        if (index.data.user.identity) assert.equal(index.data.doneCount, 6)
        assertShows(show(index), ['协议编号 ' + contract.contract_no])
      })

      await t.test('a failing contracts list shows 签署协议 not done and the rest of the page still works', async () => {
        const realRequest = shim.wx.request
        shim.wx.request = function (opts) {
          if (new URL(opts.url).pathname === '/api/v1/contracts') {
            setImmediate(() => opts.fail && opts.fail({ errMsg: 'request:fail simulated' }))
            return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {} }
          }
          return realRequest.call(this, opts)
        }
        try {
          const index = shim.loadPage('pages/index/index')
          const me = await index.onShow()
          assert.ok(me, 'onShow resolves with /api/v1/me')
          assert.equal(index.data.loggedIn, true)
          assert.equal(index.data.loading, false)
          assert.equal(index.data.error, null)
          const steps = Object.fromEntries(index.data.steps.map((s) => [s.key, s]))
          assert.equal(steps.contract.done, false)
          assert.equal(steps.login.done, true)
          assert.equal(steps.phone.done, true)
          if (index.data.user.identity) {
            assert.equal(steps.bank_card.done, true)
            assert.equal(steps.contract.locked, false)
            assert.equal(index.data.doneCount, 5)
            assertShows(show(index), ['6. 签署协议\n个人信息处理授权同意书\n去完成 >', '进度\n5 / 6'])
          }
        } finally {
          shim.wx.request = realRequest
        }
      })
    })

    // Every person has 5 face checks a day (DAILY_ATTEMPT_LIMIT, the signing intent checks included), and the
    // customer above used them all (a failed check, a pass, a blank signature, a check never fetched, the privacy
    // consent). The account is opened by a second customer (another WeChat user, another person), from scratch:
    // the open page lists every step as missing, and each is done through the page it links to.
    await t.test('accounts: a second customer opens a Class II account step by step and funds it', async (t) => {
      const PHONE2 = '13912345678'
      const NAME2 = '王五'
      const idNo2 = idNumber('310104', '19880808')
      const boundCard = cardNumber('622202')
      const newCard = cardNumber('622588') // the card bound in place of boundCard, late in the journey
      const openPage = shim.loadPage('pages/account/open/open')
      let application = null
      let agreement = null
      let account = null
      const accountPath = () => '/api/v1/accounts/' + account.id
      const card = async () => {
        const res = await controlGet('bank-cards/' + boundCard)
        assert.equal(res.status, 200, res.text)
        return res.json
      }
      const balanceNow = async () => (await api.request({ url: accountPath() })).balance_fen
      const topUpPage = async (mode) => {
        const page = shim.loadPage('pages/account/topup/topup')
        const loaded = await page.onLoad({ id: String(account.id), mode })
        assert.ok(loaded, describeError(page))
        return page
      }
      const transferCalls = (from) => shim.state.requests.slice(from).filter((r) => /\/(top-ups|withdrawals)$/.test(new URL(r.url).pathname))
      /** Back on the open page (onShow): what is missing now. */
      const missingNow = async () => {
        const app = await openPage.onShow()
        assert.ok(app, describeError(openPage))
        return app.missing
      }
      /** The open page's step row for a step, as rendered, and where tapping it goes. */
      const tapStep = (key) => {
        const index = openPage.data.steps.findIndex((s) => s.key === key)
        shim.tap(openPage, (index + 1) + '. ' + openPage.data.steps[index].title)
        return shim.state.navigations.pop().url
      }

      await t.test('a second WeChat user logs in; the index has no account yet and an entry to open one', async () => {
        shim.wx.clearStorageSync()
        shim.state.openid = 'o_node_' + crypto.randomBytes(6).toString('hex')
        const login = shim.loadPage('pages/login/login')
        await login.onTapLogin()
        assert.ok(login.data.user, describeError(login))
        assert.equal(login.data.phone, '')

        const index = shim.loadPage('pages/index/index')
        await index.onShow()
        assert.equal(index.data.error, null, describeError(index))
        assert.equal(index.data.accountsLoaded, true)
        assert.deepEqual(index.data.accounts, [])
        assertShows(show(index), ['我的账户\n尚未开立电子账户\n开立电子账户'])
        index.goOpenAccount()
        assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/account/open/open' })
      })

      await t.test('open page: Class II by default; every step missing, in order, each linking to its page', async () => {
        const from = shim.state.requests.length
        application = await openPage.onLoad({})
        assert.ok(application, describeError(openPage))
        const [call] = shim.state.requests.slice(from)
        assert.equal(pathOf(call), 'POST /api/v1/account-applications 201')
        assert.deepEqual(call.data, { account_class: 'II' })
        assert.equal(application.account_class, 'II')
        assert.deepEqual(application.missing, ['phone', 'id_card', 'face', 'bank_card', 'agreement'])
        assert.equal(application.next_step, 'phone')
        assert.equal(application.status, 'draft')
        assert.equal(application.contract_id, null)
        assert.equal(application.account_id, null)
        assert.equal(openPage.data.canSubmit, false)

        const agreementUrl = '/pages/contract/contract?template=account_agreement&subject_id=' + application.id
        const view = show(openPage)
        assertShows(view, ['Ⅱ类户\n已选择', '申请编号\n' + application.id, '账户类别\nⅡ类户', '申请状态\n资料填写中',
          '1. 绑定手机号\n去完成 >\n2. 身份证验证\n去完成 >\n3. 人脸核验\n去完成 >\n4. 同名银行卡验证\n去完成 >\n5. 签署开户协议\n个人银行电子账户服务协议\n去完成 >',
          '尚需完成：绑定手机号、身份证验证、人脸核验、同名银行卡验证、签署开户协议'])
        assert.equal(tappable(view, '提交开户').attrs.disabled, true, 'no submit while anything is missing')
        assert.deepEqual(view.select('view.step').map((r) => r.dataset.url), ['/pages/login/login', '/pages/identity/idcard/idcard',
          '/pages/identity/face/face', '/pages/identity/bankcard/bankcard', agreementUrl])
        assert.deepEqual(openPage.data.steps.map((s) => s.current), [true, false, false, false, false], 'the first missing step is the one to do now')

        // 提交开户 called anyway (the button is disabled): refused on the page, no request.
        const before = shim.state.requests.length
        assert.equal(await openPage.onSubmit(), null)
        assert.equal(shim.state.requests.length, before)
        assert.equal(shim.lastToast().title, '请先完成：绑定手机号、身份证验证、人脸核验、同名银行卡验证、签署开户协议')
      })

      await t.test('open page: a stale page that thinks nothing is missing gets APPLICATION_INCOMPLETE from the server', async () => {
        openPage.setData({ canSubmit: true })
        const from = shim.state.requests.length
        assert.equal(await openPage.onSubmit(), null)
        const calls = shim.state.requests.slice(from)
        assert.deepEqual(calls.map(pathOf), ['POST /api/v1/account-applications/' + application.id + '/submit 409',
          'GET /api/v1/account-applications/' + application.id + ' 200'])
        assert.equal(calls[0].response.error.code, 'APPLICATION_INCOMPLETE')
        assert.match(calls[0].response.error.message, /绑定手机号/)
        assert.equal(openPage.data.error.code, 'APPLICATION_INCOMPLETE')
        assert.equal(openPage.data.error.message, calls[0].response.error.message, 'the server says what is missing')
        assert.equal(openPage.data.canSubmit, false, 'the page re-read what is missing')
        assertShows(show(openPage), [calls[0].response.error.message, '尚需完成：绑定手机号'])
      })

      await t.test('each step through the page it links to: the missing list shrinks in order', async () => {
        // phone → the login page's getPhoneNumber button
        assert.equal(tapStep('phone'), '/pages/login/login')
        const login = shim.loadPage('pages/login/login')
        await login.onLoad({})
        const code = await shim.control('phone-code', { phone: PHONE2 })
        assert.equal(code.status, 200, code.text)
        await login.onGetPhoneNumber({ detail: { errMsg: 'getPhoneNumber:ok', code: code.json.code } })
        assert.equal(login.data.phone, '139****5678', describeError(login))
        assert.deepEqual(await missingNow(), ['id_card', 'face', 'bank_card', 'agreement'])
        assertShows(show(openPage), ['1. 绑定手机号\n已完成', '尚需完成：身份证验证、人脸核验、同名银行卡验证、签署开户协议'])

        // id_card → the ID card page
        assert.equal(tapStep('id_card'), '/pages/identity/idcard/idcard')
        const idcard = shim.loadPage('pages/identity/idcard/idcard')
        for (const side of ['front', 'back']) {
          const res = await shim.control('id-card-images', { side, name: NAME2, id_number: idNo2, valid_until: '20400101' }, { raw: true })
          assert.equal(res.status, 200)
          shim.queueMedia(shim.writeTempFile(res.buffer, '.png'))
        }
        await idcard.chooseFront()
        await idcard.chooseBack()
        idcard.onNameInput({ detail: { value: NAME2 } })
        idcard.onIdNumberInput({ detail: { value: idNo2 } })
        const verified = await idcard.onSubmit()
        assert.ok(verified && verified.verified, describeError(idcard))
        assert.deepEqual(await missingNow(), ['face', 'bank_card', 'agreement'])

        // face → the face page
        assert.equal(tapStep('face'), '/pages/identity/face/face')
        const facePage = shim.loadPage('pages/identity/face/face')
        facePage.onLoad({})
        shim.state.faceResult = 'pass'
        const passed = await facePage.onStart()
        assert.ok(passed && passed.passed, describeError(facePage))
        assert.deepEqual(await missingNow(), ['bank_card', 'agreement'])
        assert.equal(openPage.data.application.status, 'draft')

        // bank_card → the bank card page (a Class I card in the same name)
        assert.equal(tapStep('bank_card'), '/pages/identity/bankcard/bankcard')
        const res = await shim.control('bank-cards', { card_number: boundCard, name: NAME2, id_number: idNo2, phone: PHONE2, card_class: 'I' })
        assert.ok(res.status >= 200 && res.status < 300, res.text)
        const bankcard = shim.loadPage('pages/identity/bankcard/bankcard')
        bankcard.onCardInput({ detail: { value: boundCard } })
        bankcard.onPhoneInput({ detail: { value: PHONE2 } })
        const cardResult = await bankcard.onSubmit()
        assert.ok(cardResult && cardResult.verified, describeError(bankcard))

        // Identity done: only the agreement is missing, and the application moved on.
        assert.deepEqual(await missingNow(), ['agreement'])
        application = await openPage.refresh()
        assert.equal(application.status, 'identity_verified')
        assert.equal(application.next_step, 'agreement')
        assert.ok(application.milestones.identity_verified)
        assert.deepEqual(openPage.data.steps.map((s) => [s.key, s.done]),
          [['phone', true], ['id_card', true], ['face', true], ['bank_card', true], ['agreement', false]])
        const view = show(openPage)
        assertShows(view, ['申请状态\n身份已核验', '1. 绑定手机号\n已完成', '2. 身份证验证\n已完成', '3. 人脸核验\n已完成', '4. 同名银行卡验证\n已完成',
          '5. 签署开户协议\n个人银行电子账户服务协议\n去完成 >', '尚需完成：签署开户协议', '办理进度\n身份核验完成'])
        assert.deepEqual(view.select('view.step').map((r) => r.dataset.url), ['', '', '', '',
          '/pages/contract/contract?template=account_agreement&subject_id=' + application.id], 'done steps no longer link anywhere')
        assert.equal(tappable(view, '提交开户').attrs.disabled, true)
      })

      await t.test('open page: Class III is another application; back to Class II gives the same one', async () => {
        const page = shim.loadPage('pages/account/open/open')
        const same = await page.onLoad({})
        assert.equal(same.id, application.id)
        assert.equal(shim.state.requests.filter((r) => r.url.endsWith('/api/v1/account-applications')).pop().statusCode, 200, 'the open application, not a new one')
        const three = await shim.tap(page, 'Ⅲ类户')
        assert.ok(three, describeError(page))
        assert.notEqual(three.id, application.id)
        assert.equal(three.account_class, 'III')
        assert.deepEqual(three.missing, ['agreement'])
        assertShows(show(page), ['Ⅲ类户\n已选择', '账户类别\nⅢ类户', '5. 签署开户协议'])
        assert.equal(page.data.steps[4].url, '/pages/contract/contract?template=account_agreement&subject_id=' + three.id)
        const back = await shim.tap(page, 'Ⅱ类户')
        assert.equal(back.id, application.id)
        assert.equal(page.data.accountClass, 'II')
      })

      await t.test('contract page: the account agreement is signed with subject_id = the application id', async () => {
        const page = shim.loadPage('pages/contract/contract')
        const contract = await page.onLoad({ template: 'account_agreement', subject_id: String(application.id) })
        assert.ok(contract, describeError(page))
        const prepare = shim.state.requests.filter((r) => r.url.endsWith('/api/v1/contracts') && r.method === 'POST').pop()
        assert.deepEqual(prepare.data, { template: 'account_agreement', subject_id: application.id }, 'subject_id as an integer')
        assert.equal(prepare.statusCode, 201)
        assert.equal(contract.template, 'account_agreement')
        assert.equal(contract.status, 'draft')
        await page.onReady()
        shim.setCanvasImage(shim.writeTempFile(shim.signaturePng({ width: 200, height: 80 }), '.png'))
        page.onConsentChange({ detail: { value: ['agree'] } })
        drawStroke(page, STROKE)
        shim.state.faceResult = 'pass'
        agreement = await shim.tap(page, '同意并签署')
        assert.ok(agreement, describeError(page))
        assert.equal(agreement.status, 'signed')
        assert.equal(agreement.id, contract.id)
        const view = show(page)
        assertShows(view, [page.data.title, '签署成功', '返回继续开户'])
        shim.tap(page, '返回继续开户')
        assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateBack', delta: 1 })
      })

      await t.test('open page: nothing missing, 提交开户 opens the account and goes to the account page', async () => {
        const app = await openPage.onShow()
        assert.ok(app, describeError(openPage))
        assert.deepEqual(app.missing, [])
        assert.equal(app.next_step, 'submit')
        assert.equal(app.status, 'signed')
        assert.equal(app.contract_id, agreement.id)
        assert.ok(app.milestones.signed)
        assert.equal(openPage.data.canSubmit, true)
        let view = show(openPage)
        assertShows(view, ['申请状态\n协议已签署', '5. 签署开户协议\n个人银行电子账户服务协议\n已完成', '开户协议签署'])
        assert.ok(!view.text.includes('尚需完成'))
        assert.equal(tappable(view, '提交开户').attrs.disabled, false)

        const from = shim.state.requests.length
        const asked = shim.state.subscriptions.length
        account = await shim.tap(openPage, '提交开户')
        assert.ok(account, describeError(openPage))
        // The tap asked for the subscriptions first (WeChat delivers only what the user accepted: else 43101).
        const subscribed = shim.state.subscriptions.slice(asked)
        assert.equal(subscribed.length, 1, 'one wx.requestSubscribeMessage on the tap')
        assert.equal(subscribed[0].errMsg, 'requestSubscribeMessage:ok')
        assert.ok(subscribed[0].tmplIds.includes('fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE'), 'account opened')
        const held = await controlGet('subscriptions?openid=' + encodeURIComponent(shim.state.openid))
        assert.ok(held.json.subscriptions.some((s) => s.template_id === 'fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE'), held.text)
        assert.deepEqual(shim.state.requests.slice(from).map(pathOf), ['POST /api/v1/account-applications/' + application.id + '/submit 201'])
        assert.equal(account.account_class, 'II')
        assert.equal(account.status, 'active')
        assert.equal(account.balance_fen, 0)
        assert.ok(account.number_masked.includes('*'), 'masked account number: ' + account.number_masked)
        assert.ok(account.bound_card_masked.endsWith(boundCard.slice(-4)) && account.bound_card_masked.includes('*'), account.bound_card_masked)
        assert.ok(!account.bound_card_masked.includes(boundCard))
        assert.equal(shim.lastToast().title, '开户成功')
        assert.deepEqual(shim.state.navigations.pop(), { type: 'redirectTo', url: '/pages/account/account?id=' + account.id })

        // Submitting again (a double tap, a retry) answers the same account: 200, nothing opened twice.
        const again = await openPage.onSubmit()
        assert.equal(again.id, account.id)
        assert.equal(shim.state.requests[shim.state.requests.length - 1].statusCode, 200)
        shim.state.navigations.pop()

        await openPage.refresh()
        assert.equal(openPage.data.application.status, 'opened')
        view = show(openPage)
        assertShows(view, ['申请状态\n已开户', '查看账户', '账户开立'])
        assert.ok(!view.text.includes('提交开户'))
        shim.tap(openPage, '查看账户')
        assert.deepEqual(shim.state.navigations.pop(), { type: 'redirectTo', url: '/pages/account/account?id=' + account.id })
      })

      await t.test('the "account opened" subscribe message opens pages/account/account, a page of app.json', async () => {
        const pages = JSON.parse(fs.readFileSync(path.join(shim.ROOT, 'app.json'), 'utf8')).pages
        let message = null
        for (let i = 0; i < 75 && !message; i++) {
          const res = await controlGet('subscribe-messages?touser=' + encodeURIComponent(shim.state.openid))
          assert.equal(res.status, 200, res.text)
          message = res.json.messages.find((m) => m.page && m.data && m.data.character_string2) || null
          if (!message) await sleep(200)
        }
        assert.ok(message, 'the outbox delivered the message (WeChat refuses a page not in app.json with 41030)')
        const [route, query] = message.page.split('?')
        assert.equal(route, 'pages/account/account')
        assert.equal(query, 'id=' + account.id, 'the message opens this account')
        assert.ok(pages.includes(route), route + ' is a page of app.json')
        assert.equal(message.data.character_string2.value, account.number_masked)

        // Opened from the message: the page takes the query the message carries (the account's id).
        const page = shim.loadPage(route)
        const shown = await page.onLoad(Object.fromEntries(new URLSearchParams(query || '')))
        assert.ok(shown, describeError(page))
        assert.equal(shown.id, account.id)
        assert.equal(page.data.account.number, account.number_masked)
      })

      await t.test('account page: masked number, Class II, balance ¥0.00, the limits used and left', async () => {
        const page = shim.loadPage('pages/account/account')
        const a = await page.onLoad({ id: String(account.id) })
        assert.ok(a, describeError(page))
        assert.equal(pathOf(shim.state.requests[shim.state.requests.length - 1]), 'GET /api/v1/accounts/' + account.id + ' 200')
        assert.deepEqual(a.limits, {
          daily_outflow_fen: 1000000, daily_outflow_used_fen: 0, daily_outflow_remaining_fen: 1000000,
          yearly_outflow_fen: 20000000, yearly_outflow_used_fen: 0, yearly_outflow_remaining_fen: 20000000,
          balance_cap_fen: null, balance_room_fen: null
        }, 'Class II: ¥10,000 a day, ¥200,000 a year, no balance cap')
        const view = show(page)
        assertShows(view, ['Ⅱ类户电子账户\n正常\n' + account.number_masked + '\n账户余额\n¥0.00', '绑定银行卡\n' + account.bound_card_masked,
          '今日已用\n¥0.00\n今日剩余\n¥10,000.00\n日累计限额\n¥10,000.00', '本年已用\n¥0.00\n本年剩余\n¥200,000.00\n年累计限额\n¥200,000.00',
          '从银行卡充值', '提现到银行卡', '交易明细'])
        assert.ok(!view.text.includes('余额上限'), 'no cap on Class II')
        shim.tap(page, '从银行卡充值')
        shim.tap(page, '提现到银行卡')
        shim.tap(page, '交易明细')
        assert.deepEqual(shim.state.navigations.splice(-3).map((n) => n.url), [
          '/pages/account/topup/topup?id=' + account.id + '&mode=topup',
          '/pages/account/topup/topup?id=' + account.id + '&mode=withdraw',
          '/pages/account/transactions/transactions?id=' + account.id
        ])
      })

      await t.test('top-up page: malformed amounts are refused on the page, without a request', async () => {
        const page = await topUpPage('topup')
        for (const [typed, message] of [['', '请输入金额'], ['1.234', '金额最多保留两位小数'], ['-5', '金额须大于 0'], ['abc', '请输入正确的金额'],
          ['1e3', '请输入正确的金额'], ['0', '金额须大于 0'], ['10000000000.01', '金额超出单笔上限']]) {
          page.onAmountInput({ detail: { value: typed } })
          const before = shim.state.requests.length
          assert.equal(await shim.tap(page, '确认充值'), null, typed)
          assert.equal(shim.state.requests.length, before, JSON.stringify(typed) + ' sends nothing')
          assert.equal(shim.lastToast().title, message, typed)
          assert.equal(page.data.error.message, message)
        }
        assertShows(show(page), ['金额超出单笔上限'])
      })

      await t.test('top up ¥100 (typed "100"): 10000 fen pulled from the bound card, balance ¥100.00', async () => {
        const res = await shim.control('bank-cards/' + boundCard + '/balance', { balance_fen: 50000 })
        assert.equal(res.status, 200, res.text)
        assert.equal(res.json.balance_fen, 50000)
        const page = await topUpPage('topup')
        let view = show(page)
        assertShows(view, ['从银行卡充值', '账户余额\n¥0.00', '绑定银行卡\n' + account.bound_card_masked, '确认充值'])
        page.onAmountInput({ detail: { value: '100' } })
        const from = shim.state.requests.length
        const transfer = await shim.tap(page, '确认充值')
        assert.ok(transfer, describeError(page))
        const calls = shim.state.requests.slice(from)
        assert.deepEqual(calls.map(pathOf), ['POST ' + accountPath() + '/top-ups 201', 'GET ' + accountPath() + ' 200'])
        assert.deepEqual(calls[0].data, { amount_fen: 10000 }, 'an integer number of fen')
        // The device id risk control goes by (made on this phone at the second customer's login, kept in storage).
        assert.match(calls[0].header['X-Device'], /^[0-9a-f]{32}$/)
        assert.equal(calls[0].header['X-Device'], shim.wx.getStorageSync('device_id'))
        assert.match(calls[0].header['Idempotency-Key'], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
        assert.equal(transfer.direction, 'pull')
        assert.equal(transfer.status, 'succeeded')
        assert.equal(transfer.amount_fen, 10000)
        assert.equal(transfer.balance_fen, 10000)
        assert.equal(page.data.amount, '', 'the form is cleared')
        assert.equal(page.data.retrying, false)
        assert.equal(shim.lastToast().title, '充值成功')
        view = show(page)
        assertShows(view, ['充值成功\n充值金额\n¥100.00\n账户余额\n¥100.00', '查看交易明细'])
        assert.equal((await card()).balance_fen, 40000, 'the bound card paid ¥100')
        assert.equal(await balanceNow(), 10000)
      })

      await t.test('transactions page: the top-up, newest first', async () => {
        const page = shim.loadPage('pages/account/transactions/transactions')
        const entries = await page.onLoad({ id: String(account.id) })
        assert.ok(entries, describeError(page))
        assert.equal(page.data.entries.length, 1)
        assert.equal(page.data.nextCursor, null)
        const view = show(page)
        assertShows(view, ['交易明细\n充值\n+¥100.00\n' + page.data.entries[0].at + '\n余额 ¥100.00\n来自 ' + account.bound_card_masked, '没有更多了'])
      })

      await t.test('statements page: this month\'s CSV has the top-up and sums to closing − opening; the PDF is sealed', async () => {
        const page = shim.loadPage('pages/account/statements/statements')
        await page.onLoad({ id: String(account.id) })
        const month = page.data.month
        assert.match(month, /^\d{4}-\d{2}$/)
        const from = shim.state.requests.length
        const csv = await shim.tap(page, '下载 CSV 对账单')
        assert.ok(csv, describeError(page))
        assert.deepEqual(csv.entries.map((r) => [r.kind, r.direction, r.amount_fen]), [['top_up', 'credit', '10000']])
        const sum = csv.entries.reduce((acc, r) => acc + (r.direction === 'credit' ? 1 : -1) * parseInt(r.amount_fen, 10), 0)
        assert.equal(csv.closingFen - csv.openingFen, sum)
        assert.deepEqual([csv.openingFen, csv.closingFen], [0, 10000])
        assertShows(show(page), ['期初余额\n¥0.00\n期末余额\n¥100.00\n本月交易\n1 笔', '充值\n+¥100.00'])
        const pdf = await shim.tap(page, '下载 PDF 对账单（银行电子签章）')
        assert.ok(pdf, describeError(page))
        const bytes = fs.readFileSync(pdf.filePath)
        assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-')
        assert.ok(bytes.includes('/ByteRange') && bytes.includes('BankSignature'), 'sealed by the bank')
        assert.equal(shim.state.documents[shim.state.documents.length - 1].fileType, 'pdf')
        assert.equal(pdf.sha256, crypto.createHash('sha256').update(bytes).digest('hex'))
        assert.deepEqual(shim.state.requests.slice(from).map(pathOf).filter((p) => p.includes('/statements/')), [
          'GET ' + accountPath() + '/statements/' + month + '.csv 200', 'GET ' + accountPath() + '/statements/' + month + '.pdf 200'])
        // a month not yet begun: its own text
        page.onMonthChange({ detail: { value: '2099-01' } })
        assert.equal(await shim.tap(page, '下载 CSV 对账单'), null)
        assert.equal(page.data.error.code, 'STATEMENT_MONTH_IN_FUTURE')
        assertShows(show(page), ['该月份尚未开始，暂无对账单'])
      })

      await t.test('a blocked card declines the top-up: the decline message, the balance unchanged', async () => {
        let res = await shim.control('bank-cards/' + boundCard + '/block', { blocked: true })
        assert.equal(res.status, 200, res.text)
        assert.equal(res.json.blocked, true)
        const page = await topUpPage('topup')
        page.onAmountInput({ detail: { value: '50' } })
        let from = shim.state.requests.length
        assert.equal(await shim.tap(page, '确认充值'), null)
        const [declined] = transferCalls(from)
        assert.equal(pathOf(declined), 'POST ' + accountPath() + '/top-ups 422')
        assert.equal(declined.response.error.code, 'CARD_DECLINED')
        assert.equal(page.data.error.code, 'CARD_DECLINED')
        assert.equal(page.data.error.message, declined.response.error.message, 'the reason the server gives')
        assert.equal(page.data.error.message, '绑定银行卡状态异常，请联系发卡行')
        assert.equal(shim.lastToast().title, '绑定银行卡状态异常，请联系发卡行')
        assert.equal(page.data.retrying, false, 'a decline is final: no retry under the same key')
        assertShows(show(page), ['绑定银行卡状态异常，请联系发卡行', '确认充值'])
        assert.equal(await balanceNow(), 10000, 'nothing credited')
        assert.equal((await card()).balance_fen, 40000, 'nothing pulled')

        // Unblocked, the same amount tapped again is a new intent: a new key, and it goes through.
        res = await shim.control('bank-cards/' + boundCard + '/block', { blocked: false })
        assert.equal(res.status, 200, res.text)
        from = shim.state.requests.length
        const transfer = await shim.tap(page, '确认充值')
        assert.ok(transfer, describeError(page))
        const [ok] = transferCalls(from)
        assert.equal(ok.statusCode, 201)
        assert.notEqual(ok.header['Idempotency-Key'], declined.header['Idempotency-Key'])
        assert.equal(transfer.balance_fen, 15000)
        assert.equal((await card()).balance_fen, 35000)
      })

      await t.test('an answer lost on the way back: 重试 reuses the Idempotency-Key, the account is credited once', async () => {
        const page = await topUpPage('topup')
        page.onAmountInput({ detail: { value: '20' } })
        const from = shim.state.requests.length
        const restore = loseNextAnswer(/\/top-ups$/)
        let first
        try {
          first = await shim.tap(page, '确认充值')
        } finally {
          restore()
        }
        assert.equal(first, null)
        const [lost] = transferCalls(from)
        assert.equal(lost.statusCode, 201, 'the server did it; only the answer was lost')
        assert.equal(page.data.error.code, 'NETWORK_ERROR')
        assert.equal(page.data.error.message, '网络异常，请稍后再试')
        assert.equal(page.data.retrying, true)
        let view = show(page)
        assertShows(view, ['网络异常，请稍后再试', '重试', '上一笔充值结果未知，重试不会重复扣款', '重新填写'])
        page.onAmountInput({ detail: { value: '30' } })
        assert.equal(page.data.amount, '20', 'the amount of an unresolved intent cannot be changed')

        const again = await shim.tap(page, '重试')
        assert.ok(again, describeError(page))
        const [retry] = transferCalls(from).slice(1)
        assert.equal(retry.statusCode, 201)
        assert.equal(retry.header['Idempotency-Key'], lost.header['Idempotency-Key'], 'the same key for the same intent')
        assert.deepEqual(retry.data, lost.data)
        assert.equal(again.id, lost.response.id, 'the first answer, replayed')
        assert.equal(again.balance_fen, 17000)
        assert.equal(page.data.retrying, false)
        view = show(page)
        assertShows(view, ['充值成功\n充值金额\n¥20.00\n账户余额\n¥170.00'])
        assert.equal(await balanceNow(), 17000, 'credited once')
        assert.equal((await card()).balance_fen, 33000, 'pulled once')
      })

      await t.test('the card network\'s answer unknown (202): 查询结果 retries with the same key until it is known', async () => {
        const page = await topUpPage('topup')
        page.onAmountInput({ detail: { value: '30' } })
        // The pull reaches the card network but its answer is dropped, and the status query fails (3 tries).
        let res = await shim.control('faults', { path: 'cardnet/v1/transfers', when: 'after', drop: true })
        assert.equal(res.status, 201, res.text)
        res = await shim.control('faults', { path: 'cardnet/v1/transfers/{request_id}', http_status: 500, count: 3 })
        assert.equal(res.status, 201, res.text)
        const from = shim.state.requests.length
        let pending
        try {
          pending = await shim.tap(page, '确认充值')
        } finally {
          // Never leave a fault behind for the next transfer (only this test sets card-network faults).
          const left = await controlGet('faults')
          if (left.json.faults.some((f) => String(f.path).includes('cardnet/v1/transfers'))) {
            await fetch(BASE_URL + '/sandbox/control/faults', { method: 'DELETE' })
            assert.fail('faults left unused: ' + JSON.stringify(left.json.faults))
          }
        }
        assert.ok(pending, describeError(page))
        const [first] = transferCalls(from)
        assert.equal(first.statusCode, 202)
        assert.equal(pending.status, 'pending')
        assert.equal(page.data.retrying, true)
        assert.equal(page.data.result.pending, true)
        assertShows(show(page), ['银行处理中', '查询结果'])
        assert.equal((await card()).balance_fen, 30000, 'the card network did pull')
        const mid = await api.request({ url: accountPath() })
        assert.equal(mid.balance_fen, 17000, 'not credited before the outcome is known')
        assert.equal(mid.pending_in_fen, 3000)

        const settled = await shim.tap(page, '查询结果')
        assert.ok(settled, describeError(page))
        const [second] = transferCalls(from).slice(1)
        assert.equal(second.statusCode, 201)
        assert.equal(second.header['Idempotency-Key'], first.header['Idempotency-Key'])
        assert.equal(settled.id, pending.id, 'the same transfer, now settled')
        assert.equal(settled.status, 'succeeded')
        assert.equal(settled.balance_fen, 20000)
        assert.equal(page.data.retrying, false)
        assertShows(show(page), ['充值成功\n充值金额\n¥30.00\n账户余额\n¥200.00'])
        assert.equal((await card()).balance_fen, 30000, 'pulled once')
      })

      await t.test('withdraw: more than the balance is INSUFFICIENT_FUNDS; ¥50 goes back to the card', async () => {
        const page = await topUpPage('withdraw')
        assertShows(show(page), ['提现到银行卡', '账户余额\n¥200.00', '确认提现'])
        page.onAmountInput({ detail: { value: '1000' } })
        let from = shim.state.requests.length
        assert.equal(await shim.tap(page, '确认提现'), null)
        const [refused] = transferCalls(from)
        assert.equal(pathOf(refused), 'POST ' + accountPath() + '/withdrawals 422')
        assert.equal(refused.response.error.code, 'INSUFFICIENT_FUNDS')
        assert.deepEqual(refused.data, { amount_fen: 100000 })
        assert.equal(page.data.error.message, '账户余额不足')
        assert.equal(shim.lastToast().title, '账户余额不足')
        assert.equal(page.data.retrying, false)
        assertShows(show(page), ['账户余额不足'])

        page.onAmountInput({ detail: { value: '50.00' } })
        from = shim.state.requests.length
        const transfer = await shim.tap(page, '确认提现')
        assert.ok(transfer, describeError(page))
        const [ok] = transferCalls(from)
        assert.equal(pathOf(ok), 'POST ' + accountPath() + '/withdrawals 201')
        assert.deepEqual(ok.data, { amount_fen: 5000 })
        assert.notEqual(ok.header['Idempotency-Key'], refused.header['Idempotency-Key'])
        assert.equal(transfer.direction, 'push')
        assert.equal(transfer.balance_fen, 15000)
        assertShows(show(page), ['提现成功\n提现金额\n¥50.00\n账户余额\n¥150.00'])
        assert.equal((await card()).balance_fen, 35000, 'the card got ¥50 back')
        assert.equal(await balanceNow(), 15000)
      })

      await t.test('transactions page: newest first, 加载更多 through the cursor', async () => {
        const all = (await api.request({ url: accountPath() + '/transactions', data: { limit: 100 } })).entries
        assert.deepEqual(all.map((e) => [e.kind, e.direction, e.amount_fen, e.balance_after_fen]), [
          ['withdrawal', 'debit', 5000, 15000],
          ['top_up', 'credit', 3000, 20000],
          ['top_up', 'credit', 2000, 17000],
          ['top_up', 'credit', 5000, 15000],
          ['top_up', 'credit', 10000, 10000]
        ], 'one entry per movement (the retried top-ups booked once), newest first')
        assert.ok(all.every((e) => e.counts_as_outflow === false), 'moves to and from the bound card are not outflow')

        const page = shim.loadPage('pages/account/transactions/transactions')
        page.setData({ pageSize: 2 })
        const from = shim.state.requests.length
        await page.onLoad({ id: String(account.id) })
        assert.equal(page.data.entries.length, 2, describeError(page))
        assert.ok(page.data.nextCursor)
        assertShows(show(page), ['提现\n-¥50.00', '余额 ¥150.00', '转至 ' + account.bound_card_masked, '充值\n+¥30.00', '加载更多'])
        await page.onLoadMore()
        assert.equal(page.data.entries.length, 4)
        await page.onLoadMore()
        assert.equal(page.data.entries.length, 5)
        assert.equal(page.data.nextCursor, null)
        const gets = shim.state.requests.slice(from)
        assert.deepEqual(gets.map((r) => new URL(r.url).searchParams.get('cursor')), [null, gets[0].response.next_cursor, gets[1].response.next_cursor])
        assert.deepEqual(gets.map((r) => new URL(r.url).searchParams.get('limit')), ['2', '2', '2'])
        assert.deepEqual(page.data.entries.map((e) => e.id), all.map((e) => e.id))
        assert.deepEqual(page.data.entries.map((e) => e.amount), ['-¥50.00', '+¥30.00', '+¥20.00', '+¥50.00', '+¥100.00'])
        const view = show(page)
        assertShows(view, ['充值\n+¥100.00', '余额 ¥100.00', '没有更多了'])
        assert.ok(!view.text.includes('加载更多'))
        const before = shim.state.requests.length
        assert.equal(await page.onLoadMore(), null)
        assert.equal(shim.state.requests.length, before, 'nothing more to load')
      })

      await t.test('account page (opened without an id) and index show the new balance', async () => {
        const page = shim.loadPage('pages/account/account')
        const a = await page.onLoad({})
        assert.ok(a, describeError(page))
        assert.equal(a.id, account.id)
        assert.equal(pathOf(shim.state.requests[shim.state.requests.length - 1]), 'GET /api/v1/accounts 200')
        assertShows(show(page), ['账户余额\n¥150.00', '今日已用\n¥0.00', '本年已用\n¥0.00'])

        const index = shim.loadPage('pages/index/index')
        await index.onShow()
        assert.equal(index.data.accounts.length, 1, describeError(index))
        assertShows(show(index), ['我的账户\nⅡ类户 ' + account.number_masked + '\n正常\n¥150.00 >'])
        index.goAccount({ currentTarget: { dataset: { id: account.id } } })
        assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/account/account?id=' + account.id })
      })

      // The second customer's Class II account (¥150.00 now) pays the car's tolls: the car registered on the
      // vehicles page, its ETC card bound on the bind page, the auto-debit authorisation signed on the contract page,
      // activated; then a partner (the toll operator, signed requests of docs/open-api.md) debits it.
      await t.test('ETC: a car, its ETC card bound to the Class II account, and a toll a partner debits', async (t) => {
        const typedPlate = '粤b d' + digits(5) // what the user types: a space, a lowercase letter
        const plate = '粤BD' + typedPlate.slice(4) // a small new-energy car's plate
        const otherPlate = '京A' + digits(5)
        const etcCard = '1101' + digits(16)
        const maskedCard = etcCard.slice(0, 6) + '*'.repeat(10) + etcCard.slice(-4)
        const MERCHANT = '京港澳高速杜家坎站'
        const vehiclesPage = shim.loadPage('pages/etc/vehicles/vehicles')
        const bindPage = shim.loadPage('pages/etc/bind/bind')
        const bindingPage = shim.loadPage('pages/etc/binding/binding')
        let vehicle = null
        let other = null
        let binding = null
        let toll = null
        const bindingPath = () => '/api/v1/etc-bindings/' + binding.id
        const since = (from) => shim.state.requests.slice(from)
        const callTo = (from, method, pathname) => since(from).find((r) => r.method === method && new URL(r.url).pathname === pathname)
        const tollBody = (outTradeNo, amountFen) => ({
          out_trade_no: outTradeNo,
          card_number: etcCard,
          category: 'toll',
          amount_fen: amountFen,
          occurred_at: cstTime(new Date(Date.now() - 60 * 1000)),
          merchant: MERCHANT
        })

        await t.test('the partner\'s credentials are given (PARTNER_APP_ID, PARTNER_SECRET)', () => {
          const { appId, secret } = partnerCredentials()
          assert.match(appId, /^pt[0-9a-f]{16}$/, 'an app id')
          assert.match(secret, /^sk_[A-Za-z0-9_-]{43}$/, 'a secret')
        })

        await t.test('index: 我的车辆与ETC, no binding yet', async () => {
          assert.equal(await balanceNow(), 15000, 'the account the journey funded')
          const index = shim.loadPage('pages/index/index')
          await index.onShow()
          assert.equal(index.data.error, null, describeError(index))
          assert.equal(index.data.bindingsLoaded, true)
          assert.deepEqual(index.data.bindings, [])
          assertShows(show(index), ['我的车辆与ETC\n尚未绑定 ETC 卡，绑定后通行费从Ⅱ类户自动扣款\n我的车辆与ETC'])
          index.goVehicles()
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/etc/vehicles/vehicles' })
        })

        await t.test('vehicles page: malformed plates and a colour that does not fit are refused on the page', async () => {
          const list = await vehiclesPage.onLoad({})
          assert.deepEqual(list, [], describeError(vehiclesPage))
          assertShows(show(vehiclesPage), ['我的车辆\n尚未登记车辆', '车牌颜色：蓝', '蓝\n黄\n黑\n白\n渐变绿\n黄绿双拼', '添加车辆'])
          for (const [typed, code] of [['', 'PLATE_REQUIRED'], ['粤B I2345', 'PLATE_INVALID'], ['京A1234', 'PLATE_INVALID'], ['A京12345', 'PLATE_INVALID']]) {
            vehiclesPage.onPlateInput({ detail: { value: typed } })
            const before = shim.state.requests.length
            assert.equal(await shim.tap(vehiclesPage, '添加车辆'), null, typed)
            assert.equal(shim.state.requests.length, before, JSON.stringify(typed) + ' sends nothing')
            assert.equal(vehiclesPage.data.error.code, code, typed)
            assert.equal(shim.lastToast().title, errors.MESSAGES[code])
          }
          assertShows(show(vehiclesPage), [errors.MESSAGES.PLATE_INVALID])

          // Typed with a space and a lowercase letter: normalised; 8 characters of a small car: 渐变绿 by default.
          vehiclesPage.onPlateInput({ detail: { value: typedPlate } })
          assert.equal(vehiclesPage.data.plate, plate)
          assert.equal(vehiclesPage.data.color, 'gradient_green')
          assertShows(show(vehiclesPage), ['车牌颜色：渐变绿'])
          // A large new-energy vehicle's plate (digits, then D): 黄绿双拼.
          vehiclesPage.onPlateInput({ detail: { value: '粤b 12345d' } })
          assert.equal(vehiclesPage.data.plate, '粤B12345D')
          assert.equal(vehiclesPage.data.color, 'yellow_green')
          assertShows(show(vehiclesPage), ['车牌颜色：黄绿双拼'])

          vehiclesPage.onPlateInput({ detail: { value: typedPlate } })
          shim.tap(vehiclesPage, '蓝')
          assert.equal(vehiclesPage.data.color, 'blue', 'the user may pick another colour')
          const before = shim.state.requests.length
          assert.equal(await shim.tap(vehiclesPage, '添加车辆'), null)
          assert.equal(shim.state.requests.length, before, 'a blue new-energy plate is refused without a request')
          assert.equal(vehiclesPage.data.error.code, 'PLATE_COLOR_MISMATCH')
          assertShows(show(vehiclesPage), [errors.MESSAGES.PLATE_COLOR_MISMATCH])
        })

        await t.test('vehicles page: the car registered as 粤BD… 渐变绿 (201), the same car again is the same registration (200)', async () => {
          shim.tap(vehiclesPage, '渐变绿')
          let from = shim.state.requests.length
          vehicle = await shim.tap(vehiclesPage, '添加车辆')
          assert.ok(vehicle, describeError(vehiclesPage))
          const post = callTo(from, 'POST', '/api/v1/vehicles')
          assert.equal(post.statusCode, 201)
          assert.deepEqual(post.data, { plate_number: plate, plate_color: 'gradient_green' }, 'the plate normalised on the client')
          assert.equal(vehicle.plate_number, plate)
          assert.equal(vehicle.plate_color, 'gradient_green')
          assert.equal(shim.lastToast().title, '添加成功')
          assert.equal(vehiclesPage.data.plate, '', 'the form is cleared')
          assert.deepEqual(vehiclesPage.data.vehicles.map((v) => v.id), [vehicle.id])
          assertShows(show(vehiclesPage), ['我的车辆\n' + plate + '\n渐变绿牌 · 新能源\n未绑定ETC\n绑定ETC卡\n删除'])

          vehiclesPage.onPlateInput({ detail: { value: plate } })
          from = shim.state.requests.length
          const again = await shim.tap(vehiclesPage, '添加车辆')
          assert.equal(again.id, vehicle.id)
          assert.equal(callTo(from, 'POST', '/api/v1/vehicles').statusCode, 200)
          assert.equal(shim.lastToast().title, '该车辆已登记')
          assert.equal(vehiclesPage.data.vehicles.length, 1)

          // A second car, a blue plate (typed with a middle dot).
          vehiclesPage.onPlateInput({ detail: { value: '京a·' + otherPlate.slice(2) } })
          assert.equal(vehiclesPage.data.plate, otherPlate)
          assert.equal(vehiclesPage.data.color, 'blue')
          other = await shim.tap(vehiclesPage, '添加车辆')
          assert.ok(other, describeError(vehiclesPage))
          assert.equal(other.plate_color, 'blue')
          assertShows(show(vehiclesPage), [plate + '\n渐变绿牌 · 新能源\n未绑定ETC', otherPlate + '\n蓝牌\n未绑定ETC'])
          shim.tap(vehiclesPage, '绑定ETC卡', { within: plate }) // the new-energy car's button, not the blue car's
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/etc/bind/bind?vehicle_id=' + vehicle.id })
        })

        await t.test('bind page: the car and the Class II account chosen, a 20-digit card number, a pending binding', async () => {
          await bindPage.onLoad({ vehicle_id: String(vehicle.id) })
          assert.equal(bindPage.data.error, null, describeError(bindPage))
          assert.equal(bindPage.data.vehicleId, vehicle.id)
          assert.equal(bindPage.data.accountId, account.id, 'the Class II account')
          assertShows(show(bindPage), [plate + ' 渐变绿牌\n已选择', otherPlate + ' 蓝牌\n选择', 'Ⅱ类户 ' + account.number_masked + '\n已选择\n余额 ¥150.00',
            '已输入 0 / 20 位', '下一步：签署授权书'])

          for (const typed of [etcCard.slice(0, 19), etcCard + '1', '']) {
            bindPage.onCardInput({ detail: { value: typed } })
            const before = shim.state.requests.length
            assert.equal(await shim.tap(bindPage, '下一步：签署授权书'), null)
            assert.equal(shim.state.requests.length, before, typed.length + ' digits: no request')
            assert.equal(bindPage.data.error.code, 'ETC_CARD_INVALID')
            assert.equal(shim.lastToast().title, errors.MESSAGES.ETC_CARD_INVALID)
          }
          assertShows(show(bindPage), [errors.MESSAGES.ETC_CARD_INVALID])

          bindPage.onCardInput({ detail: { value: etcCard.replace(/(\d{4})(?=\d)/g, '$1 ') } })
          assert.equal(bindPage.data.cardNumber, etcCard, 'digits only')
          assertShows(show(bindPage), ['已输入 20 / 20 位'])
          const from = shim.state.requests.length
          binding = await shim.tap(bindPage, '下一步：签署授权书')
          assert.ok(binding, describeError(bindPage))
          const post = callTo(from, 'POST', '/api/v1/etc-bindings')
          assert.equal(post.statusCode, 201)
          assert.deepEqual(post.data, { vehicle_id: vehicle.id, card_number: etcCard, account_id: account.id }, 'integer ids, the card number a string')
          assert.equal(binding.status, 'pending')
          assert.ok(Number.isInteger(binding.authorisation_contract_id), 'the etc_autodebit contract to sign')
          assert.equal(binding.card_number_masked, maskedCard)
          assert.equal(binding.plate_number, plate)
          assert.equal(binding.arrears_fen, 0)
          assert.equal(bindPage.data.authorised, false)
          const view = show(bindPage)
          assertShows(view, [plate + '\n待开通', '车牌颜色\n渐变绿', 'ETC 卡号\n' + maskedCard, '扣款账户\nⅡ类户 ' + account.number_masked,
            '1. 签署《ETC通行费及车辆服务费用自动扣款授权书》\n去签署 >\n2. 开通自动扣款\n签署后开通'])
          assert.ok(!view.text.includes(etcCard), 'the full card number is not shown')
        })

        await t.test('bind page: activating before the authorisation is signed is AUTHORISATION_NOT_SIGNED', async () => {
          const from = shim.state.requests.length
          assert.equal(await shim.tap(bindPage, '开通自动扣款'), null)
          const [call] = since(from)
          assert.equal(pathOf(call), 'POST ' + bindingPath() + '/activate 409')
          assert.equal(call.response.error.code, 'AUTHORISATION_NOT_SIGNED')
          assert.equal(bindPage.data.error.message, '请先签署 ETC 自动扣款授权书')
          assert.equal(shim.lastToast().title, '请先签署 ETC 自动扣款授权书')
          assertShows(show(bindPage), ['请先签署 ETC 自动扣款授权书', '待开通'])
          shim.tap(bindPage, '去签署 >')
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/contract/contract?template=etc_autodebit&subject_id=' + binding.id })
        })

        await t.test('contract page: the etc_autodebit authorisation of the binding, signed with a fresh face check', async () => {
          const page = shim.loadPage('pages/contract/contract')
          const contract = await page.onLoad({ template: 'etc_autodebit', subject_id: String(binding.id) })
          assert.ok(contract, describeError(page))
          const prepare = shim.state.requests.filter((r) => r.url.endsWith('/api/v1/contracts') && r.method === 'POST').pop()
          assert.deepEqual(prepare.data, { template: 'etc_autodebit', subject_id: binding.id }, 'subject_id: the binding, as an integer')
          assert.equal(prepare.statusCode, 200, 'the authorisation made with the binding')
          assert.equal(contract.id, binding.authorisation_contract_id)
          assert.equal(contract.template, 'etc_autodebit')
          assert.equal(contract.subject_id, String(binding.id))
          assert.equal(contract.status, 'draft')
          assertShows(show(page), [page.data.title, '协议编号\n' + contract.contract_no, contract.sha256, '同意并签署'])
          await page.onReady()
          shim.setCanvasImage(shim.writeTempFile(shim.signaturePng({ width: 200, height: 80 }), '.png'))
          page.onConsentChange({ detail: { value: ['agree'] } })
          drawStroke(page, STROKE)
          shim.state.faceResult = 'pass'
          const from = shim.state.requests.length
          const signed = await page.onSign()
          assert.ok(signed, describeError(page))
          assert.deepEqual(since(from).map(pathOf), [
            'POST /api/v1/uploads 201',
            'POST /api/v1/identity/face 201',
            'POST /api/v1/identity/face/' + page.data.verifyId + '/result 200',
            'POST /api/v1/contracts/' + contract.id + '/sign 200'
          ], 'a fresh face check right before signing')
          assert.equal(signed.status, 'signed')
          const view = show(page)
          assertShows(view, ['签署成功', '返回开通自动扣款'])
          assert.ok(!view.text.includes('返回继续开户'))
          shim.tap(page, '返回开通自动扣款')
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateBack', delta: 1 })
        })

        await t.test('bind page (back from signing): 已签署; 开通自动扣款 activates the binding', async () => {
          const again = await bindPage.onShow()
          assert.ok(again, describeError(bindPage))
          assert.equal(again.status, 'pending')
          assert.equal(bindPage.data.authorised, true, 'the signed authorisation is listed for this binding')
          assertShows(show(bindPage), ['1. 签署《ETC通行费及车辆服务费用自动扣款授权书》\n已签署\n2. 开通自动扣款\n可开通'])
          const from = shim.state.requests.length
          const active = await shim.tap(bindPage, '开通自动扣款')
          assert.ok(active, describeError(bindPage))
          assert.deepEqual(since(from).map(pathOf), ['POST ' + bindingPath() + '/activate 200'])
          assert.equal(active.status, 'active')
          assert.ok(active.activated_at)
          assert.equal(active.expires_at, null)
          assert.equal(shim.lastToast().title, '开通成功')
          assertShows(show(bindPage), [plate + '\n已开通', 'ETC 自动扣款已开通\n开通时间\n' + bindPage.data.binding.activatedAt, '查看绑定详情'])
          shim.tap(bindPage, '查看绑定详情')
          assert.deepEqual(shim.state.navigations.pop(), { type: 'redirectTo', url: '/pages/etc/binding/binding?id=' + binding.id })
          binding = active
        })

        await t.test('the same card for another car is ALREADY_BOUND; a car with a binding cannot be removed (VEHICLE_BOUND)', async () => {
          const page = shim.loadPage('pages/etc/bind/bind')
          await page.onLoad({})
          assert.equal(page.data.vehicleId, other.id, 'the car without a binding is chosen')
          assertShows(show(page), [plate + ' 渐变绿牌\nETC 已开通', otherPlate + ' 蓝牌\n已选择'])
          page.onCardInput({ detail: { value: etcCard } })
          let from = shim.state.requests.length
          assert.equal(await shim.tap(page, '下一步：签署授权书'), null)
          const post = callTo(from, 'POST', '/api/v1/etc-bindings')
          assert.equal(post.statusCode, 409)
          assert.equal(post.response.error.code, 'ALREADY_BOUND')
          assert.equal(page.data.error.message, errors.MESSAGES.ALREADY_BOUND)
          assertShows(show(page), [errors.MESSAGES.ALREADY_BOUND])

          await vehiclesPage.onShow()
          assertShows(show(vehiclesPage), [plate + '\n渐变绿牌 · 新能源\nETC 已开通\n查看ETC\n删除', otherPlate + '\n蓝牌\n未绑定ETC\n绑定ETC卡\n删除'])
          const modals = shim.state.modals.length
          from = shim.state.requests.length
          assert.equal(await shim.tap(vehiclesPage, '删除', { within: plate }), null)
          assert.equal(shim.state.modals.length, modals + 1, 'asked to confirm')
          const refused = callTo(from, 'DELETE', '/api/v1/vehicles/' + vehicle.id)
          assert.equal(refused.statusCode, 409)
          assert.equal(refused.response.error.code, 'VEHICLE_BOUND')
          assert.equal(vehiclesPage.data.error.message, '该车辆已绑定 ETC 卡，请先解除绑定再删除')
          assertShows(show(vehiclesPage), ['该车辆已绑定 ETC 卡，请先解除绑定再删除'])

          from = shim.state.requests.length
          assert.equal(await shim.tap(vehiclesPage, '删除', { within: otherPlate }), true, describeError(vehiclesPage))
          assert.equal(callTo(from, 'DELETE', '/api/v1/vehicles/' + other.id).statusCode, 204)
          assert.deepEqual(vehiclesPage.data.vehicles.map((v) => v.id), [vehicle.id])
          const view = show(vehiclesPage)
          assert.ok(!view.text.includes(otherPlate))
          shim.tap(vehiclesPage, '查看ETC')
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/etc/binding/binding?id=' + binding.id })
        })

        await t.test('binding page: masked card, plate, account, 已开通, no arrears, no debit yet', async () => {
          const shown = await bindingPage.onLoad({ id: String(binding.id) })
          assert.ok(shown, describeError(bindingPage))
          assert.equal(bindingPage.data.debitsLoaded, true)
          assert.deepEqual(bindingPage.data.debits, [])
          const view = show(bindingPage)
          assertShows(view, [plate + '\n已开通\n车牌颜色\n渐变绿\nETC 卡号\n' + maskedCard + '\n扣款账户\nⅡ类户 ' + account.number_masked + ' >\n账户余额\n¥150.00\n欠费\n¥0.00',
            '暂停自动扣款', '解除绑定', '扣款记录\n暂无扣款记录'])
          assert.ok(!view.text.includes(etcCard))
          assert.ok(!view.text.includes('恢复自动扣款'))
        })

        await t.test('a partner debits a toll of ¥35.00 (signed request, signed answer); a retry is the same answer', async () => {
          const body = tollBody('ETC' + Date.now() + digits(6), 3500)
          const res = await partnerCall('POST', '/open/v1/debits', body)
          assert.equal(res.status, 201, res.text)
          assert.equal(res.signed, true, 'the answer is signed by the bank for this request')
          toll = res.json
          assert.equal(toll.out_trade_no, body.out_trade_no)
          assert.equal(toll.status, 'succeeded')
          assert.equal(toll.category, 'toll')
          assert.equal(toll.amount_fen, 3500)
          assert.equal(toll.binding_id, binding.id)
          assert.equal(toll.card_number_masked, maskedCard)
          assert.equal(toll.plate_number, plate)
          assert.equal(toll.plate_color, 'gradient_green')
          assert.equal(toll.merchant, MERCHANT)
          assert.equal(toll.refusal_code, null)
          assert.equal(new Date(toll.occurred_at).getTime(), new Date(body.occurred_at).getTime())
          assert.equal(res.headers.get('idempotent-replayed'), null)

          const retry = await partnerCall('POST', '/open/v1/debits', body)
          assert.equal(retry.status, 201, retry.text)
          assert.equal(retry.signed, true)
          assert.notEqual(retry.headers.get('x-nonce'), res.headers.get('x-nonce'), 'each answer has its own nonce')
          assert.equal(retry.headers.get('idempotent-replayed'), 'true')
          assert.deepEqual(retry.json, toll, 'the first answer again, booked once')
          assert.equal(await balanceNow(), 11500, '¥150.00 - ¥35.00')
        })

        await t.test('binding page: 通行费 ¥35.00 已扣款; the account page\'s balance is ¥35.00 less; the transactions page lists it', async () => {
          const shown = await bindingPage.onShow()
          assert.ok(shown, describeError(bindingPage))
          assert.equal(bindingPage.data.debits.length, 1)
          assert.equal(bindingPage.data.debits[0].outTradeNo, toll.out_trade_no)
          assertShows(show(bindingPage), ['账户余额\n¥115.00', '扣款记录\n通行费\n¥35.00\n' + MERCHANT + '\n已扣款\n' + bindingPage.data.debits[0].at, '没有更多了'])

          const page = shim.loadPage('pages/account/account')
          const a = await page.onLoad({ id: String(account.id) })
          assert.ok(a, describeError(page))
          assert.equal(a.balance_fen, 11500)
          assert.equal(a.limits.daily_outflow_used_fen, 3500, 'a toll is consumption: it counts toward the Class II limits')
          assertShows(show(page), ['账户余额\n¥115.00', '今日已用\n¥35.00\n今日剩余\n¥9,965.00'])

          const tx = shim.loadPage('pages/account/transactions/transactions')
          await tx.onLoad({ id: String(account.id) })
          assert.ok(tx.data.entries.length >= 1, describeError(tx))
          assert.equal(tx.data.entries[0].kind, 'toll')
          assertShows(show(tx), ['交易明细\n通行费\n-¥35.00\n' + tx.data.entries[0].at + '\n余额 ¥115.00\n转至 ' + MERCHANT])
        })

        await t.test('pause: the partner\'s debit is refused (BINDING_NOT_ACTIVE); resume', async () => {
          let b = await shim.tap(bindingPage, '暂停自动扣款')
          assert.ok(b, describeError(bindingPage))
          assert.equal(b.status, 'suspended')
          assert.equal(shim.lastToast().title, '已暂停自动扣款')
          assertShows(show(bindingPage), [plate + '\n已暂停', '恢复自动扣款\n暂停期间，合作方的扣款将被拒绝。\n解除绑定'])
          const res = await partnerCall('POST', '/open/v1/debits', tollBody('ETC' + Date.now() + digits(6), 1000))
          assert.equal(res.status, 409, res.text)
          assert.equal(res.json.error.code, 'BINDING_NOT_ACTIVE')
          assert.equal(res.signed, true, 'a refusal is signed too')
          assert.equal(await balanceNow(), 11500, 'nothing debited while paused')
          b = await shim.tap(bindingPage, '恢复自动扣款')
          assert.ok(b, describeError(bindingPage))
          assert.equal(b.status, 'active')
          assertShows(show(bindingPage), [plate + '\n已开通', '暂停自动扣款'])
        })

        await t.test('a debit larger than the balance: 422 INSUFFICIENT_FUNDS, recorded as arrears; the page shows 欠费 ¥200.00', async () => {
          const res = await partnerCall('POST', '/open/v1/debits', tollBody('ETC' + Date.now() + digits(6), 20000))
          assert.equal(res.status, 422, res.text)
          assert.equal(res.json.error.code, 'INSUFFICIENT_FUNDS')
          assert.equal(res.signed, true)
          assert.equal(await balanceNow(), 11500, 'nothing taken')

          const shown = await bindingPage.onShow()
          assert.ok(shown, describeError(bindingPage))
          assert.equal(shown.arrears_fen, 20000)
          assert.deepEqual(bindingPage.data.debits.map((d) => [d.categoryLabel, d.amount, d.statusText]),
            [['通行费', '¥200.00', '欠费'], ['通行费', '¥35.00', '已扣款']], 'newest first')
          assertShows(show(bindingPage), ['欠费\n¥200.00\n有扣款因余额不足或超出限额未能扣款，欠费补缴后才能解除绑定。',
            '扣款记录\n通行费\n¥200.00\n' + MERCHANT + '\n欠费\n' + bindingPage.data.debits[0].at + '\n未能扣款：账户余额不足\n通行费\n¥35.00'])

          // 加载更多 through the cursor, one debit a page.
          const page = shim.loadPage('pages/etc/binding/binding')
          page.setData({ pageSize: 1 })
          const from = shim.state.requests.length
          await page.onLoad({ id: String(binding.id) })
          assert.equal(page.data.debits.length, 1, describeError(page))
          assert.ok(page.data.nextCursor)
          assertShows(show(page), ['欠费\n¥200.00', '加载更多'])
          await page.onLoadMore()
          assert.equal(page.data.debits.length, 2)
          assert.equal(page.data.nextCursor, null)
          const gets = since(from).filter((r) => new URL(r.url).pathname === bindingPath() + '/debits')
          assert.deepEqual(gets.map((r) => new URL(r.url).searchParams.get('cursor')), [null, String(gets[0].response.next_cursor)])
          assert.deepEqual(gets.map((r) => new URL(r.url).searchParams.get('limit')), ['1', '1'])
          assert.deepEqual(page.data.debits.map((d) => d.statusText), ['欠费', '已扣款'])
          const view = show(page)
          assertShows(view, ['没有更多了'])
          assert.ok(!view.text.includes('加载更多'))
        })

        await t.test('解除绑定 is refused while arrears are owed: the server\'s message, with the amount', async () => {
          const modals = shim.state.modals.length
          const from = shim.state.requests.length
          assert.equal(await shim.tap(bindingPage, '解除绑定'), null)
          assert.equal(shim.state.modals.length, modals + 1, 'asked to confirm')
          assert.equal(shim.state.modals[modals].title, '解除绑定')
          const [call] = since(from)
          assert.equal(pathOf(call), 'DELETE ' + bindingPath() + ' 409')
          assert.equal(call.response.error.code, 'ARREARS_OUTSTANDING')
          assert.match(call.response.error.message, /¥200\.00/)
          assert.equal(bindingPage.data.error.message, call.response.error.message, 'the server\'s message, with the amount owed')
          assert.equal(shim.lastToast().title, call.response.error.message)
          assertShows(show(bindingPage), [call.response.error.message, plate + '\n已开通'])
          assert.equal((await api.request({ url: bindingPath() })).status, 'active', 'still bound')
        })

        await t.test('index: the binding, its status and the arrears; the partner\'s statement of the day lists both debits', async () => {
          const index = shim.loadPage('pages/index/index')
          await index.onShow()
          assert.equal(index.data.bindings.length, 1, describeError(index))
          assertShows(show(index), ['我的车辆与ETC\n' + plate + ' 渐变绿\nETC 卡 ' + maskedCard + '\n已开通 >\n欠费 ¥200.00\n我的车辆与ETC',
            '我的账户\nⅡ类户 ' + account.number_masked + '\n正常\n¥115.00 >'])
          index.goBinding({ currentTarget: { dataset: { id: binding.id } } })
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/etc/binding/binding?id=' + binding.id })

          // The statement: a query in the signed string (CANONICAL_QUERY).
          const day = cstTime(new Date()).slice(0, 10)
          const res = await partnerCall('GET', '/open/v1/statements?date=' + day)
          assert.equal(res.status, 200, res.text)
          assert.equal(res.signed, true)
          const rows = res.text.trim().split('\n').map((line) => line.split(','))
          const mine = rows.filter((r) => r[8] === maskedCard)
          assert.deepEqual(mine.map((r) => [r[0], r[3], r[4], r[5]]), [['debit', 'toll', 'succeeded', '3500'], ['debit', 'toll', 'arrears', '20000']])
        })

        // The arrears are paid with WeChat Pay (issue #11), from outside the account: the pay page orders them
        // (the amount is the server's), wx.requestPayment is played on WeChat Pay's emulator, the backend learns of the
        // payment (its notification, or asking WeChat Pay) and settles the refused debit; then unbinding succeeds.
        let payPage = null
        let payOrder = null
        const orderPath = () => '/api/v1/payments/orders/' + payOrder.id

        await t.test('binding page: 补缴欠费 while ¥200.00 is owed opens the pay page', async () => {
          const shown = await bindingPage.onShow()
          assert.ok(shown, describeError(bindingPage))
          assert.equal(shown.arrears_fen, 20000)
          const view = show(bindingPage)
          assertShows(view, ['欠费\n¥200.00\n有扣款因余额不足或超出限额未能扣款，欠费补缴后才能解除绑定。\n补缴欠费'])
          shim.tap(bindingPage, '补缴欠费')
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/etc/pay/pay?binding_id=' + binding.id + '&purpose=arrears' })
        })

        await t.test('pay page: what is paid, the binding\'s arrears of ¥200.00; nothing is ordered before the tap', async () => {
          payPage = shim.loadPage('pages/etc/pay/pay')
          payPage.setData({ pollIntervalMs: 300, backDelayMs: 10 })
          const from = shim.state.requests.length
          const b = await payPage.onLoad({ binding_id: String(binding.id), purpose: 'arrears' })
          assert.ok(b, describeError(payPage))
          assert.deepEqual(since(from).map(pathOf), ['GET ' + bindingPath() + ' 200'])
          const view = show(payPage)
          assertShows(view, ['ETC欠费补缴', '车牌\n' + plate + ' 渐变绿\nETC 卡号\n' + maskedCard + '\n当前欠费\n¥200.00', '微信支付 ¥200.00'])
          assert.equal(tappable(view, '微信支付 ¥200.00').attrs.disabled, false)
          assert.ok(!view.text.includes(etcCard))
        })

        await t.test('pay page: the first attempt is cancelled in wx.requestPayment: nothing paid, the order stays payable', async () => {
          shim.queuePayment('cancel')
          const from = shim.state.requests.length
          const payments = shim.state.payments.length
          assert.equal(await shim.tap(payPage, '微信支付 ¥200.00'), null)
          const calls = since(from)
          assert.deepEqual(calls.map(pathOf), ['POST /api/v1/payments/orders 201'], 'ordered, and nothing asked after a cancel')
          assert.deepEqual(calls[0].data, { purpose: 'arrears', reference_id: binding.id }, 'no amount: the server\'s')
          assert.match(calls[0].header['Idempotency-Key'], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
          payOrder = calls[0].response
          assert.equal(payOrder.purpose, 'arrears')
          assert.equal(payOrder.reference_id, binding.id)
          assert.equal(payOrder.amount_fen, 20000, 'what the binding owes')
          assert.equal(payOrder.status, 'prepaid')
          assert.equal(payOrder.paid_at, null)
          const params = payOrder.pay_params
          assert.deepEqual(Object.keys(params).sort(), ['nonceStr', 'package', 'paySign', 'signType', 'timeStamp'])
          assert.equal(params.signType, 'RSA')
          assert.match(params.package, /^prepay_id=wx\S+$/)
          const made = shim.state.payments.slice(payments)
          assert.equal(made.length, 1)
          assert.deepEqual(made[0].params, params, 'wx.requestPayment got the order\'s pay_params')
          assert.equal(made[0].prepayId, params.package.slice('prepay_id='.length))
          assert.deepEqual(made[0].outcome, { cancel: true })
          assert.equal(made[0].emulator, null, 'WeChat Pay was not asked to pay')
          assert.equal(made[0].errMsg, 'requestPayment:fail cancel')
          assert.equal(payPage.data.phase, 'cancelled')
          assert.equal(shim.lastToast().title, '已取消支付')
          const view = show(payPage)
          assertShows(view, ['支付订单\n支付金额\n¥200.00\n订单状态\n待支付\n订单号\n' + payOrder.out_trade_no, '已取消支付\n未扣款，订单仍可支付，可重新支付。\n重新支付'])
          assert.ok(!view.text.includes('支付成功'))

          // Nothing paid: the order can still be paid (here and at WeChat Pay); the arrears and the balance are as they were.
          const again = await api.request({ url: orderPath() })
          assert.equal(again.status, 'prepaid')
          assert.deepEqual(again.pay_params && again.pay_params.package, params.package)
          const atWeChatPay = await controlGet('pay/orders?out_trade_no=' + payOrder.out_trade_no)
          assert.equal(atWeChatPay.status, 200, atWeChatPay.text)
          assert.deepEqual(atWeChatPay.json.orders.map((o) => [o.prepay_id, o.trade_state, o.total]), [[made[0].prepayId, 'NOTPAY', 20000]])
          assert.equal((await api.request({ url: bindingPath() })).arrears_fen, 20000)
          assert.equal(await balanceNow(), 11500)
        })

        await t.test('pay page: 重新支付 is answered with the same order (200); paid on WeChat Pay\'s emulator; polled until paid: 支付成功', async () => {
          const from = shim.state.requests.length
          const payments = shim.state.payments.length
          const paid = await shim.tap(payPage, '重新支付')
          assert.ok(paid, describeError(payPage))
          const calls = since(from)
          const post = calls[0]
          assert.equal(pathOf(post), 'POST /api/v1/payments/orders 200', 'the open order for the same debt')
          assert.deepEqual(post.data, { purpose: 'arrears', reference_id: binding.id })
          const firstKey = shim.state.requests.slice(0, from).filter((r) => r.method === 'POST' && new URL(r.url).pathname === '/api/v1/payments/orders').pop().header['Idempotency-Key']
          assert.notEqual(post.header['Idempotency-Key'], firstKey, 'a new intent, a new key: the server, not a replay, answers the same order')
          assert.equal(post.response.id, payOrder.id, 'the same order')
          assert.equal(post.response.out_trade_no, payOrder.out_trade_no)
          assert.equal(post.response.pay_params.package, payOrder.pay_params.package, 'the same prepay_id')

          const [made] = shim.state.payments.slice(payments)
          assert.equal(made.prepayId, payOrder.pay_params.package.slice('prepay_id='.length))
          assert.equal(made.emulator.status, 200, JSON.stringify(made.emulator))
          assert.equal(made.emulator.json.trade_state, 'SUCCESS')
          assert.equal(made.emulator.json.out_trade_no, payOrder.out_trade_no)
          assert.equal(made.errMsg, 'requestPayment:ok')

          // Polled: GET /api/v1/payments/orders/{id} until paid.
          const polls = calls.slice(1).filter((r) => new URL(r.url).pathname === orderPath())
          assert.ok(polls.length >= 1 && polls.length <= payPage.data.pollTimes, polls.map(pathOf).join(', '))
          assert.ok(polls.every((r) => r.statusCode === 200))
          assert.equal(polls[polls.length - 1].response.status, 'paid')
          assert.ok(polls.slice(0, -1).every((r) => r.response.status === 'prepaid'))
          assert.equal(paid.id, payOrder.id)
          assert.equal(paid.status, 'paid')
          assert.ok(paid.paid_at)
          assert.equal(paid.pay_params, null, 'nothing more to pay')
          assert.equal(paid.amount_fen, 20000)

          assert.equal(payPage.data.phase, 'paid')
          assert.ok(shim.state.toasts.some((x) => x.title === '支付成功'))
          const view = show(payPage)
          assertShows(view, ['当前欠费\n¥0.00', '支付金额\n¥200.00\n订单状态\n已支付\n订单号\n' + payOrder.out_trade_no + '\n支付时间\n' + payPage.data.order.paidAt,
            '支付成功\n欠费已补缴，正在返回 ETC 绑定。\n返回ETC绑定'])
          assert.ok(!view.text.includes('重新支付') && !view.text.includes('微信支付 ¥'))
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateBack', delta: 1 }, 'back to the binding page')
          const before = shim.state.requests.length
          // no pay button is shown once paid: the page's own guard, called directly
          assert.equal(await payPage.onPay(), null, 'a paid order is not paid again')
          assert.equal(shim.state.requests.length, before)

          // WeChat Pay's TRANSACTION.SUCCESS notification reached the backend (whichever came first, it or the query).
          let note = null
          for (let i = 0; i < 50; i++) {
            const res = await controlGet('pay/notifications?out_trade_no=' + payOrder.out_trade_no)
            assert.equal(res.status, 200, res.text)
            note = res.json.notifications[0] || null
            if (note && note.status !== 'pending') break
            await sleep(100)
          }
          assert.ok(note, 'a notification for the order')
          assert.equal(note.event_type, 'TRANSACTION.SUCCESS')
          assert.equal(note.status, 'delivered', JSON.stringify(note))
          assert.equal(note.resource.out_trade_no, payOrder.out_trade_no)
          assert.equal(note.resource.amount.total, 20000)
          // Asking again (a late notification, another poll) changes nothing.
          assert.equal((await api.request({ url: orderPath() })).paid_at, paid.paid_at)
        })

        await t.test('binding page (back from paying): 欠费 ¥0.00, the ¥200.00 toll 已补缴, no 补缴欠费', async () => {
          const shown = await bindingPage.onShow()
          assert.ok(shown, describeError(bindingPage))
          assert.equal(shown.arrears_fen, 0)
          assert.deepEqual(bindingPage.data.debits.map((d) => [d.categoryLabel, d.amount, d.statusText]),
            [['通行费', '¥200.00', '已补缴'], ['通行费', '¥35.00', '已扣款']])
          const view = show(bindingPage)
          assertShows(view, ['账户余额\n¥115.00\n欠费\n¥0.00', '扣款记录\n通行费\n¥200.00\n' + MERCHANT + '\n已补缴\n' + bindingPage.data.debits[0].at])
          assert.ok(!view.text.includes('补缴欠费'))
          assert.ok(!view.text.includes('欠费补缴后才能解除绑定'))
        })

        await t.test('orders page (the binding page\'s 支付订单): the paid arrears order at the top, 已支付, no 申请退款 (arrears are not refunded)', async () => {
          shim.tap(bindingPage, '支付订单')
          assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/payments/orders/orders' })
          const ordersPage = shim.loadPage('pages/payments/orders/orders')
          const from = shim.state.requests.length
          const listed = await ordersPage.onLoad({})
          assert.ok(listed, describeError(ordersPage))
          const calls = since(from)
          assert.deepEqual(calls.map(pathOf), ['GET /api/v1/payments/orders 200'])
          const body = calls[0].response
          assert.deepEqual(body.orders.map((o) => o.id), [payOrder.id], 'one order: the cancelled attempt and the payment were the same order')
          assert.equal(body.next_cursor, null)
          const [top] = body.orders
          assert.deepEqual([top.purpose, top.reference_id, top.out_trade_no, top.amount_fen, top.status, top.refunded_fen],
            ['arrears', binding.id, payOrder.out_trade_no, 20000, 'paid', 0])
          assert.ok(top.paid_at)
          assert.ok(!('pay_params' in top), 'the list carries no pay_params')

          const o = ordersPage.data.orders[0]
          assert.deepEqual([o.id, o.title, o.amount, o.statusText, o.refundable, o.refunded], [payOrder.id, 'ETC欠费补缴', '¥200.00', '已支付', false, ''])
          const view = show(ordersPage)
          assertShows(view, ['支付订单\n', '\nETC欠费补缴\n¥200.00\n' + o.createdAt + '\n已支付\n支付时间 ' + o.paidAt + '\n订单号 ' + payOrder.out_trade_no + '\n没有更多了'])
          assert.ok(!view.text.includes('申请退款') && !view.text.includes('已退款') && !view.text.includes('待支付') && !view.text.includes('加载更多'))
          assert.equal(view.select('button').filter((b) => b.events.catchtap === 'onRefund').length, 0, 'no refund button')
          // A paid order opens nothing; a refund of it is refused on the page without a request.
          const navigations = shim.state.navigations.length
          shim.tap(ordersPage, 'ETC欠费补缴')
          assert.equal(shim.state.navigations.length, navigations)
          const sent = shim.state.requests.length
          // (no 申请退款 button to tap: the handler's own guard, called directly)
          assert.equal(await ordersPage.onRefund({ currentTarget: { dataset: { id: o.id } } }), null)
          assert.equal(shim.state.requests.length, sent)
          assert.equal(ordersPage.data.error.message, errors.MESSAGES.NOT_REFUNDABLE)

          // The server agrees: arrears are not refunded (409 NOT_REFUNDABLE), and nothing was.
          const refused = await api.request({ url: orderPath() + '/refunds', method: 'POST', data: {}, idempotent: true }).then(() => null, (err) => err)
          assert.ok(refused, 'the refund was refused')
          assert.deepEqual([refused.status, refused.code], [409, 'NOT_REFUNDABLE'])
          assert.equal(errors.describe(refused), '该订单不能退款（只退已支付的设备费）')
          assert.equal((await api.request({ url: orderPath() })).refunded_fen, 0)
        })

        await t.test('index, account and transactions pages: no arrears; the balance unchanged (paid from outside the account)', async () => {
          assert.equal(await balanceNow(), 11500, 'the arrears were paid with WeChat Pay, not from the account')
          const index = shim.loadPage('pages/index/index')
          await index.onShow()
          assert.equal(index.data.bindings.length, 1, describeError(index))
          assert.equal(index.data.bindings[0].hasArrears, false)
          const view = show(index)
          assertShows(view, ['我的车辆与ETC\n' + plate + ' 渐变绿\nETC 卡 ' + maskedCard + '\n已开通 >\n我的车辆与ETC',
            '我的账户\nⅡ类户 ' + account.number_masked + '\n正常\n¥115.00 >'])
          assert.ok(!view.text.includes('欠费'))

          const page = shim.loadPage('pages/account/account')
          const a = await page.onLoad({ id: String(account.id) })
          assert.ok(a, describeError(page))
          assertShows(show(page), ['账户余额\n¥115.00', '今日已用\n¥35.00'])
          const tx = shim.loadPage('pages/account/transactions/transactions')
          await tx.onLoad({ id: String(account.id) })
          assert.equal(tx.data.entries[0].kind, 'toll', describeError(tx))
          assert.deepEqual([tx.data.entries[0].amount, tx.data.entries[0].balanceAfter], ['-¥35.00', '¥115.00'], 'no ledger entry for the arrears payment')
          assertShows(show(tx), ['交易明细\n通行费\n-¥35.00'])
        })

        await t.test('挂失账户 at once; a partner debit is refused (ACCOUNT_RESTRICTED) and moves nothing; 解除挂失 with a face check; the debit books', async () => {
          const before = await balanceNow()
          const page = shim.loadPage('pages/account/account')
          assert.ok(await page.onLoad({ id: String(account.id) }), describeError(page))
          let a = await shim.tap(page, '挂失账户')
          assert.ok(a, describeError(page))
          assert.equal(a.status, 'restricted')
          assert.deepEqual(a.restrictions.map((r) => [r.code, r.by]), [['LOSS_REPORTED', 'holder']])
          assert.equal(shim.lastToast().title, '已挂失')
          const banner = '账户已挂失：暂不能转出资金，转入不受影响'
          assertShows(show(page), [banner, '解除挂失'])
          // every page of the account says so: the withdrawal page too
          assertShows(show(await topUpPage('withdraw')), [banner])

          const refused = await partnerCall('POST', '/open/v1/debits', tollBody('ETC' + Date.now() + digits(6), 1000))
          assert.equal(refused.status, 409, refused.text)
          assert.equal(refused.json.error.code, 'ACCOUNT_RESTRICTED')
          assert.equal(refused.signed, true, 'a refusal is signed too')
          assert.equal(errors.describe({ code: 'ACCOUNT_RESTRICTED' }), '账户已挂失、被冻结或身份证已过期，暂不能转出资金')
          assert.equal(await balanceNow(), before, 'nothing debited while reported lost')

          a = await shim.tap(page, '解除挂失')
          assert.ok(a, describeError(page))
          assert.deepEqual([a.status, a.restrictions], ['active', []])
          assert.equal(shim.lastToast().title, '已解除挂失')
          assertShows(show(page), ['挂失账户'])
          assert.ok(!show(page).text.includes(banner))

          const booked = await partnerCall('POST', '/open/v1/debits', tollBody('ETC' + Date.now() + digits(6), 1000))
          assert.equal(booked.status, 201, booked.text)
          assert.equal(await balanceNow(), before - 1000)
          // given back, so that what follows starts from the same balance
          const back = await partnerCall('POST', '/open/v1/debits/' + booked.json.out_trade_no + '/refund',
            { out_refund_no: 'R' + booked.json.out_trade_no, amount_fen: 1000 })
          assert.equal(back.status, 201, back.text)
          assert.equal(await balanceNow(), before)
        })

        await t.test('更换绑定银行卡: a card in another name is refused and the old one stays; a Class I card of 王五 with a face check is bound', async () => {
          const account0 = await api.request({ url: accountPath() })
          const accountPage = shim.loadPage('pages/account/account')
          assert.ok(await accountPage.onLoad({ id: String(account.id) }), describeError(accountPage))
          shim.tap(accountPage, '更换绑定银行卡')
          assert.equal(shim.state.navigations.pop().url, '/pages/account/bankcard/bankcard?id=' + account.id)
          const page = shim.loadPage('pages/account/bankcard/bankcard')
          assert.ok(await page.onLoad({ id: String(account.id) }), describeError(page))
          assertShows(show(page), ['现绑定银行卡\n' + account0.bound_card_masked])

          // someone else's card: the card network's same-name check fails, nothing changes
          const otherCard = cardNumber('622848')
          let res = await shim.control('bank-cards', { card_number: otherCard, name: '赵六', id_number: idNumber('110105', '19900101'), phone: PHONE2, card_class: 'I' })
          assert.equal(res.status, 201, res.text)
          page.onCardInput({ detail: { value: otherCard } })
          page.onPhoneInput({ detail: { value: PHONE2 } })
          assert.equal(await shim.tap(page, '人脸核验并更换'), null)
          assert.equal(page.data.error.code, 'CARD_MISMATCH', describeError(page))
          assertShows(show(page), [errors.describe({ code: 'CARD_MISMATCH' })])
          assert.equal((await api.request({ url: accountPath() })).bound_card_masked, account0.bound_card_masked, 'the old card stays bound')

          res = await shim.control('bank-cards', { card_number: newCard, name: NAME2, id_number: idNo2, phone: PHONE2, card_class: 'I' })
          assert.equal(res.status, 201, res.text)
          page.onCardInput({ detail: { value: newCard } })
          const from = shim.state.requests.length
          const changed = await shim.tap(page, '人脸核验并更换')
          assert.ok(changed, describeError(page))
          assert.deepEqual(since(from).map(pathOf).filter((p) => p.includes('/bound-card')), ['POST ' + accountPath() + '/bound-card 200'])
          assert.ok(changed.bound_card_masked.endsWith(newCard.slice(-4)) && !changed.bound_card_masked.includes(newCard), changed.bound_card_masked)
          assert.equal(shim.lastToast().title, '绑定银行卡已更换')
          assertShows(show(page), ['新绑定银行卡\n' + changed.bound_card_masked])
        })

        await t.test('statements page: this month\'s CSV lists the tolls and the refund, and sums to closing − opening', async () => {
          const page = shim.loadPage('pages/account/statements/statements')
          await page.onLoad({ id: String(account.id) })
          const csv = await shim.tap(page, '下载 CSV 对账单')
          assert.ok(csv, describeError(page))
          const sum = csv.entries.reduce((acc, r) => acc + (r.direction === 'credit' ? 1 : -1) * parseInt(r.amount_fen, 10), 0)
          assert.equal(csv.closingFen - csv.openingFen, sum)
          assert.equal(csv.closingFen, await balanceNow())
          assert.ok(csv.entries.some((r) => r.kind === 'toll' && r.direction === 'debit'), JSON.stringify(csv.entries))
          const pdf = await shim.tap(page, '下载 PDF 对账单（银行电子签章）')
          assert.ok(pdf, describeError(page))
          assert.ok(fs.readFileSync(pdf.filePath).includes('/ByteRange'), 'sealed by the bank')
        })

        await t.test('注销账户 while the ETC binding stands: the close page lists it and 确认销户 cannot be tapped', async () => {
          const accountPage = shim.loadPage('pages/account/account')
          assert.ok(await accountPage.onLoad({ id: String(account.id) }), describeError(accountPage))
          shim.tap(accountPage, '注销账户')
          assert.equal(shim.state.navigations.pop().url, '/pages/account/close/close?id=' + account.id)
          const page = shim.loadPage('pages/account/close/close')
          assert.ok(await page.onLoad({ id: String(account.id) }), describeError(page))
          assert.deepEqual(page.data.blockers.map((b) => b.code), ['ACCOUNT_HAS_BINDINGS'])
          assertShows(show(page), ['暂不能销户', plate])
          assert.throws(() => shim.tap(page, '确认销户'), /disabled/)
          // the server says the same to a stale page
          const res = await api.request({ url: accountPath() + '/close', method: 'POST', data: { verify_id: 'x' }, idempotencyKey: api.uuid4() }).then(() => null, (e) => e)
          assert.ok(res && ['ACCOUNT_HAS_BINDINGS', 'FACE_VERIFICATION_INVALID'].includes(res.code), JSON.stringify(res))
        })

        await t.test('解除绑定 now succeeds; the index lists no binding; the car can be removed', async () => {
          const from = shim.state.requests.length
          const unbound = await shim.tap(bindingPage, '解除绑定')
          assert.ok(unbound, describeError(bindingPage))
          assert.deepEqual(since(from).map(pathOf), ['DELETE ' + bindingPath() + ' 200'])
          assert.equal(unbound.status, 'unbound')
          assert.equal(unbound.arrears_fen, 0)
          assert.equal(shim.lastToast().title, '已解除绑定')
          const view = show(bindingPage)
          assertShows(view, [plate + '\n已解绑', '解绑时间\n' + bindingPage.data.binding.unboundAt])
          assert.ok(!view.text.includes('解除绑定') && !view.text.includes('暂停自动扣款'))

          const index = shim.loadPage('pages/index/index')
          await index.onShow()
          assert.deepEqual(index.data.bindings, [], describeError(index))
          assertShows(show(index), ['我的车辆与ETC\n尚未绑定 ETC 卡，绑定后通行费从Ⅱ类户自动扣款'])

          // The partner can no longer debit the card; the car has no binding left and can be removed.
          const res = await partnerCall('POST', '/open/v1/debits', tollBody('ETC' + Date.now() + digits(6), 1000))
          assert.ok(res.status >= 400 && res.status < 500, res.status + ' ' + res.text)
          assert.equal(res.signed, true)
          assert.equal(await balanceNow(), 11500)
          await vehiclesPage.onShow()
          assertShows(show(vehiclesPage), [plate + '\n渐变绿牌 · 新能源\n未绑定ETC\n绑定ETC卡\n删除'])
        })

        await t.test('注销账户: a face check, the whole balance to the new bound card (the card network shows it), the account closed; the closing notice', async () => {
          const balance = await balanceNow()
          assert.ok(balance > 0)
          const cardBefore = (await controlGet('bank-cards/' + newCard)).json.balance_fen
          const oldBefore = (await card()).balance_fen
          const page = shim.loadPage('pages/account/close/close')
          assert.ok(await page.onLoad({ id: String(account.id) }), describeError(page))
          assert.deepEqual(page.data.blockers, [])
          const from = shim.state.requests.length
          const closed = await shim.tap(page, '确认销户')
          assert.ok(closed, describeError(page))
          assert.deepEqual(since(from).map(pathOf).filter((p) => p.endsWith('/close 200') || p.includes('/close ')), ['POST ' + accountPath() + '/close 200'])
          assert.equal(closed.account.status, 'closed')
          assert.deepEqual([closed.payout.amount_fen, closed.payout.purpose, closed.payout.status], [balance, 'closing', 'succeeded'])
          assert.equal(shim.lastToast().title, '销户成功')
          assertShows(show(page), ['账户已销户', '转入绑定银行卡\n' + money.formatFen(balance)])

          // the card network: the new bound card credited with the balance, once; the old card untouched
          assert.equal((await controlGet('bank-cards/' + newCard)).json.balance_fen, cardBefore + balance)
          assert.equal((await card()).balance_fen, oldBefore)
          const credits = (await controlGet('transfers?card_number=' + newCard)).json.transfers.filter((x) => x.status === 'SUCCEEDED' && x.direction === 'credit')
          assert.deepEqual(credits.map((x) => x.amount_fen), [balance])

          const a = await api.request({ url: accountPath() })
          assert.deepEqual([a.status, a.balance_fen], ['closed', 0])
          const accountPage = shim.loadPage('pages/account/account')
          assert.ok(await accountPage.onLoad({ id: String(account.id) }), describeError(accountPage))
          assertShows(show(accountPage), ['该账户已于 ' + accountPage.data.account.closedAt + ' 销户。'])

          let message = null
          for (let i = 0; i < 75 && !message; i++) {
            const res = await controlGet('subscribe-messages?touser=' + encodeURIComponent(shim.state.openid))
            message = res.json.messages.find((m) => m.data && m.data.amount2) || null
            if (!message) await sleep(200)
          }
          assert.ok(message, 'the closing notice was delivered (the user subscribed on the tap)')
          assert.equal(message.data.amount2.value, (balance / 100).toFixed(2) + '元')
        })
      })
    })
  })
})

// ---------- after the journey ----------

test('every page of app.json was rendered with live data from the journey', () => {
  const pages = JSON.parse(fs.readFileSync(require('node:path').join(shim.ROOT, 'app.json'), 'utf8')).pages
  const live = new Set(shim.state.renders.filter((r) => r.via === 'explicit' && r.live).map((r) => r.route))
  assert.deepEqual(pages.filter((route) => !live.has(route)), [], 'pages never rendered (show(page)) with data from the backend')
  assert.deepEqual(shim.state.renderErrors, [], 'no render failed, on load, after a setData or explicitly')
})

test('every request the pages sent is documented, with only documented fields of the right types', () => {
  const sent = shim.state.requests.filter((r) => new URL(r.url).pathname.startsWith('/api/'))
  assert.ok(sent.length > 30, 'the journey sent its requests (' + sent.length + ')')
  assert.deepEqual(sent.flatMap((r) => bodies.check(r)), [])
  // Every request carried the device id (risk control), in the backend's pattern: one id per installation.
  const noDevice = sent.filter((r) => !/^[A-Za-z0-9_-]{8,64}$/.test(String((r.header || {})['X-Device'] || '')))
  assert.deepEqual(noDevice.map((r) => r.method + ' ' + r.url), [], 'requests without X-Device')
  const devices = new Set(sent.map((r) => r.header['X-Device']))
  assert.equal(devices.size, 3, 'a new id only when storage is cleared: the first customer, the same customer on fresh storage, the second customer')
  // The sign request: integer upload id, the boolean true, the verify_id string.
  const sign = sent.filter((r) => /\/sign$/.test(new URL(r.url).pathname)).pop()
  assert.ok(sign, 'a sign request was sent')
  assert.ok(Number.isInteger(sign.data.signature_upload_id) && sign.data.consent === true && typeof sign.data.verify_id === 'string')
})

// ---------- the client's assumptions against the live OpenAPI document ----------

async function openapiDocument() {
  const res = await fetch(BASE_URL + '/docs/openapi.json')
  assert.equal(res.status, 200, 'GET /docs/openapi.json')
  return res.json()
}

/** The operation of the document for a documented "METHOD /path/:id" (path parameters named anything). */
function operationOf(doc, method, documentedPath) {
  const shape = (p) => p.replace(/\{[^}]+\}/g, ':').replace(/:[a-z_]+/g, ':')
  const found = Object.keys(doc.paths).find((p) => shape(p) === shape(documentedPath))
  return found ? doc.paths[found][method.toLowerCase()] || null : null
}

function resolve(doc, schema) {
  if (schema && schema.$ref) return resolve(doc, schema.$ref.split('/').slice(1).reduce((o, k) => o[k], doc))
  return schema || {}
}

/** The non-null alternative of an optional field's anyOf [X, null]. */
function nonNull(schema) {
  if (schema && Array.isArray(schema.anyOf)) return schema.anyOf.find((s) => s.type !== 'null') || {}
  return schema || {}
}

/** Problems with one documented field type against its JSON Schema. */
function schemaProblems(label, type, schema) {
  const s = nonNull(schema)
  if (Array.isArray(type)) {
    return JSON.stringify((s.enum || []).slice().sort()) === JSON.stringify(type.slice().sort()) ? [] : [label + ': enum ' + JSON.stringify(s.enum) + ', documented ' + JSON.stringify(type)]
  }
  const t = type.replace(/\?$/, '')
  const want = { string: (x) => x.type === 'string', id: (x) => x.type === 'integer' && x.minimum === 1, true: (x) => x.const === true,
    fen: (x) => x.type === 'integer' && x.minimum === 1 && x.maximum === bodies.MAX_FEN, count: (x) => x.type === 'integer', key: (x) => x.type === 'string' }
  return want[t] && want[t](s) ? [] : [label + ': documented as ' + type + ', the schema is ' + JSON.stringify(s)]
}

test('request-bodies.js agrees with the OpenAPI document: endpoints, fields, required ones, types, enums, bounds', async () => {
  const doc = await openapiDocument()
  const problems = []
  for (const d of bodies.DOCUMENTED) {
    const label = d.method + ' ' + d.path
    const op = operationOf(doc, d.method, d.path)
    if (!op) {
      problems.push(label + ': no such operation')
      continue
    }
    const content = op.requestBody ? op.requestBody.content || {} : null
    if (d.form) {
      const schema = content && resolve(doc, (content['multipart/form-data'] || {}).schema)
      const props = Object.keys((schema && schema.properties) || {}).filter((k) => k !== 'file')
      if (JSON.stringify(props.sort()) !== JSON.stringify(Object.keys(d.form).sort())) problems.push(label + ': form fields ' + props)
      for (const k of Object.keys(d.form)) problems.push(...schemaProblems(label + ' ' + k, d.form[k], schema.properties[k]))
    } else if (d.body === null || (d.body && !Object.keys(d.body).length)) {
      if (d.body === null && content) problems.push(label + ': documented without a body, the schema has one')
      if (content) {
        const schema = resolve(doc, (content['application/json'] || {}).schema)
        if ((schema.required || []).length) problems.push(label + ': documented with an empty body, the schema requires ' + schema.required)
      }
    } else if (d.body) {
      const schema = content && resolve(doc, (content['application/json'] || {}).schema)
      if (!schema) {
        problems.push(label + ': no JSON body in the schema')
        continue
      }
      const props = Object.keys(schema.properties || {})
      if (JSON.stringify(props.slice().sort()) !== JSON.stringify(Object.keys(d.body).sort())) problems.push(label + ': fields ' + props + ', documented ' + Object.keys(d.body))
      const required = Object.keys(d.body).filter((k) => !bodies.isOptional(d.body[k])).sort()
      if (JSON.stringify((schema.required || []).slice().sort()) !== JSON.stringify(required)) problems.push(label + ': required ' + schema.required + ', documented ' + required)
      if (schema.additionalProperties !== false) problems.push(label + ': the schema allows unknown fields')
      for (const k of Object.keys(d.body)) if (schema.properties[k]) problems.push(...schemaProblems(label + ' ' + k, d.body[k], schema.properties[k]))
    }
    if (d.method === 'GET') {
      const params = (op.parameters || []).filter((p) => p.in === 'query')
      const names = params.map((p) => p.name).sort()
      if (JSON.stringify(names) !== JSON.stringify(Object.keys(d.query || {}).sort())) problems.push(label + ': query ' + names + ', documented ' + Object.keys(d.query || {}))
      for (const p of params) if (d.query && d.query[p.name]) problems.push(...schemaProblems(label + ' ?' + p.name, d.query[p.name], p.schema))
    }
    const headers = (op.parameters || []).filter((p) => p.in === 'header' && p.required).map((p) => p.name)
    if (JSON.stringify(headers.sort()) !== JSON.stringify(Object.keys(d.headers || {}).sort())) problems.push(label + ': required headers ' + headers + ', documented ' + Object.keys(d.headers || {}))
  }
  assert.deepEqual(problems, [])
  // utils/money.js refuses what the API would refuse.
  const amount = resolve(doc, doc.components.schemas.AmountBody).properties.amount_fen
  assert.equal(money.MAX_AMOUNT_FEN, amount.maximum)
  assert.equal(amount.minimum, 1)
  // utils/etc.js checks plates, colours and ETC card numbers as the API does.
  const vehicle = resolve(doc, doc.components.schemas.VehicleBody).properties
  assert.equal(etc.PLATE_PATTERN.source, vehicle.plate_number.pattern, 'the plate pattern (GA 36-2018) is the schema\'s')
  assert.deepEqual(etc.COLORS.map((c) => c.value), vehicle.plate_color.enum)
  assert.deepEqual(bodies.PLATE_COLORS, vehicle.plate_color.enum)
  const card = resolve(doc, doc.components.schemas.BindingBody).properties.card_number
  assert.equal(etc.CARD_PATTERN.source, card.pattern)
  assert.equal(etc.CARD_LENGTH, card.minLength)
  assert.equal(etc.CARD_LENGTH, card.maxLength)
  const debit = resolve(doc, doc.components.schemas.BindingDebitOut).properties
  assert.deepEqual(Object.keys(etc.CATEGORY_LABELS).sort(), debit.category.enum.slice().sort(), 'a label for every category')
  assert.deepEqual(Object.keys(etc.DEBIT_STATUS).sort(), debit.status.enum.slice().sort(), 'a text for every debit status')
  const status = resolve(doc, doc.components.schemas.BindingOut).properties.status
  assert.deepEqual(Object.keys(etc.BINDING_STATUS).sort(), status.enum.slice().sort(), 'a text for every binding status')
  // utils/pay.js: what an order pays for, its statuses and wx.requestPayment's parameters are the schema's.
  const order = resolve(doc, doc.components.schemas.OrderOut).properties
  assert.deepEqual(Object.keys(pay.PURPOSES).sort(), resolve(doc, doc.components.schemas.OrderBody).properties.purpose.enum.slice().sort())
  assert.deepEqual(bodies.PAYMENT_PURPOSES.slice().sort(), order.purpose.enum.slice().sort())
  assert.deepEqual(Object.keys(pay.ORDER_STATUS).sort(), order.status.enum.slice().sort(), 'a text for every order status')
  const params = resolve(doc, nonNull(order.pay_params))
  assert.deepEqual(pay.PAY_PARAM_KEYS.slice().sort(), Object.keys(params.properties).sort())
  assert.deepEqual(pay.PAY_PARAM_KEYS.slice().sort(), params.required.slice().sort(), 'all five are always given')
  assert.equal(params.properties.signType.const, 'RSA')
  // the refund's answer, found through its operation
  const refundOp = operationOf(doc, 'POST', '/api/v1/payments/orders/:id/refunds')
  const refund = resolve(doc, refundOp.responses['201'].content['application/json'].schema).properties
  assert.deepEqual(Object.keys(pay.REFUND_STATUS).sort(), refund.status.enum.slice().sort(), 'a text for every refund status')
})

test('every error code of the account, vehicle, ETC binding and payment endpoints has a text for the user (errors.js) or a specific server message', async () => {
  const doc = await openapiDocument()
  // Codes no user action on these pages leads to: the server's message is shown as is.
  const generic = new Set(['INVALID_JSON', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'VALIDATION_ERROR', 'NOT_FOUND', 'TOKEN_INVALID'])
  const codes = new Set()
  for (const [p, ops] of Object.entries(doc.paths)) {
    if (!/^\/api\/v1\/(account-applications|accounts|vehicles|etc-bindings|payments)/.test(p)) continue
    for (const op of Object.values(ops)) {
      for (const [status, r] of Object.entries(op.responses || {})) {
        if (Number(status) < 400) continue
        const schema = (((r.content || {})['application/json'] || {}).schema || {})
        const code = (((schema.properties || {}).error || {}).properties || {}).code
        for (const c of (code && code.enum) || []) codes.add(c)
      }
    }
  }
  assert.ok(codes.has('CARD_DECLINED') && codes.has('INSUFFICIENT_FUNDS') && codes.has('ACCOUNT_LIMIT_REACHED'), [...codes].join(' '))
  assert.ok(['PLATE_INVALID', 'VEHICLE_BOUND', 'ALREADY_BOUND', 'AUTHORISATION_NOT_SIGNED', 'ARREARS_OUTSTANDING'].every((c) => codes.has(c)), [...codes].join(' '))
  assert.ok(['NOTHING_TO_PAY', 'WECHATPAY_UNAVAILABLE', 'WECHATPAY_REFUSED', 'ORDER_NOT_FOUND'].every((c) => codes.has(c)), [...codes].join(' '))
  const missing = [...codes].filter((c) => !generic.has(c) && !errors.MESSAGES[c] && !errors.SERVER_TEXT[c])
  assert.deepEqual(missing, [], 'codes without a text in utils/errors.js')
})
