/**
 * End-to-end journey of the mini-program's real page code against a live backend (BASE_URL),
 * with the WeChat emulator's control API standing in for the phone.
 *
 *   BASE_URL=http://127.0.0.1:8000 node --test miniprogram_stub/test/
 *
 * Login and phone binding always run. The identity steps (ID card, face, bank card) are skipped
 * only while their backend routes do not exist yet (404 for the route); any other problem fails.
 * The contract steps (read and e-sign the privacy consent) follow the identity steps and are
 * skipped only while POST /api/v1/contracts answers 404.
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
const api = require('../utils/api')
const errors = require('../utils/errors')

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

/** The first element of a rendered page whose tap handler is `handler`. */
function tappable(view, handler) {
  const found = []
  const walk = (n) => {
    if (n.type !== 'element' && n.type !== 'root') return
    if (n.events && (n.events.bindtap === handler || n.events.catchtap === handler)) found.push(n)
    n.children.forEach(walk)
  }
  walk(view.tree)
  assert.ok(found.length, 'an element with bindtap="' + handler + '"')
  return found[0]
}

function assertShows(view, parts) {
  for (const part of parts) assert.ok(view.text.includes(part), JSON.stringify(part) + ' is not shown in:\n' + view.text)
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

// ---------- the journey ----------

test('mini-program journey against the live backend', async (t) => {
  shim.install({ baseUrl: BASE_URL })
  shim.reset()
  const wx = shim.wx

  await t.test('login page: 微信登录 loads the user from /api/v1/me', async () => {
    const page = shim.loadPage('pages/login/login')
    await page.onLoad({})
    assert.equal(page.data.user, null, 'not logged in before tapping')
    await page.onTapLogin()
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
    await page.onGetPhoneNumber({ detail: { errMsg: 'getPhoneNumber:fail user deny' } })
    assert.equal(shim.state.requests.length, before, 'a denied authorisation makes no request')
    assert.equal(shim.lastToast().title, '需要授权手机号才能继续办理')

    const res = await shim.control('phone-code', { phone: PHONE })
    assert.equal(res.status, 200, res.text)
    assert.ok(res.json.code, 'phone-code returns a code')
    await page.onGetPhoneNumber({ detail: { errMsg: 'getPhoneNumber:ok', code: res.json.code } })
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
    page.goStep({ currentTarget: { dataset: rows[2].dataset } })
    assert.deepEqual(shim.state.navigations.pop(), { type: 'navigateTo', url: '/pages/identity/idcard/idcard' })
    page.goStep({ currentTarget: { dataset: { url: '/pages/identity/idcard/idcard' } } })
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
      await page.chooseFront()
      await page.chooseBack()
      assert.ok(page.data.frontUploadId && page.data.backUploadId, describeError(page))
      page.onNameInput({ detail: { value: '李四' } })
      page.onIdNumberInput({ detail: { value: idNo } })
      await page.onSubmit()
      assert.equal(page.data.result, null)
      assert.equal(page.data.error && page.data.error.code, 'ID_MISMATCH', describeError(page))
      assert.equal(shim.lastToast().title, '身份证信息与输入不一致')
      assertShows(show(page), ['身份证信息与输入不一致'])
    })

    await t.test('ID card: upload both sides, submit, see masked name and number', async () => {
      const page = shim.loadPage('pages/identity/idcard/idcard')
      await page.onSubmit()
      assert.equal(shim.lastToast().title, '请上传身份证人像面照片', 'the form is checked before any request')

      shim.queueMedia(await idCardImage('front', idNo))
      shim.queueMedia(await idCardImage('back', idNo))
      const frontId = await page.chooseFront()
      const backId = await page.chooseBack()
      assert.ok(frontId, describeError(page))
      assert.ok(backId, describeError(page))
      assert.notEqual(frontId, backId)
      const uploads = shim.state.requests.filter((r) => r.kind === 'upload').slice(-2)
      assert.deepEqual(uploads.map((u) => u.data.kind), ['id_front', 'id_back'])
      assert.deepEqual(uploads.map((u) => u.statusCode), [201, 201])

      page.onNameInput({ detail: { value: ' ' + NAME + ' ' } })
      page.onIdNumberInput({ detail: { value: idNo.toLowerCase() } })
      const result = await page.onSubmit()
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
      const failed = await page.onStart()
      assert.ok(failed, describeError(page))
      assert.equal(failed.passed, false)
      assert.equal(page.clientResult.ok, false, 'wx.requestFacialVerify reported fail')
      assertShows(show(page), ['核身结果\n未通过', '请确认是本人操作后重试。'])

      shim.state.faceResult = 'pass'
      const passed = await page.onStart()
      assert.ok(passed, describeError(page))
      assert.equal(passed.passed, true)
      assert.ok(page.data.verifyId, 'verify_id kept on the page')
      assert.equal(page.data.result.passed, true)
      assert.equal(page.clientResult.ok, true)
      const view = show(page)
      assertShows(view, ['核身结果\n通过', '下一步：验证银行卡'])
      assert.equal(tappable(view, 'onStart').attrs.disabled, false)
    })

    await t.test('bank card: a Class II card is refused, a Class I card in the same name passes', async () => {
      const classTwo = cardNumber('622202')
      let res = await shim.control('bank-cards', { card_number: classTwo, name: NAME, id_number: idNo, phone: PHONE, card_class: 'II' })
      assert.ok(res.status >= 200 && res.status < 300, res.text)
      let page = shim.loadPage('pages/identity/bankcard/bankcard')
      page.onCardInput({ detail: { value: classTwo } })
      page.onPhoneInput({ detail: { value: PHONE } })
      await page.onSubmit()
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
      const result = await page.onSubmit()
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
        assert.equal(tappable(view, 'onSign').attrs.disabled, true, 'no signing before consent')
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
        const opened = await page.onViewContract()
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
        assert.equal(tappable(show(page), 'onViewContract').attrs.disabled, false, 'the download is over')
      })

      await t.test('signing is refused on the page without consent or without a signature (no request)', async () => {
        drawStroke(page, STROKE)
        assert.equal(page.data.hasSignature, true)
        assertShows(show(page), ['已签名'])
        let before = shim.state.requests.length
        assert.equal(await page.onSign(), null)
        assert.equal(shim.state.requests.length, before, 'no request without consent')
        assert.equal(shim.lastToast().title, '请先阅读并同意协议')
        assert.equal(page.data.error.code, 'CONSENT_REQUIRED')

        page.onConsentChange({ detail: { value: ['agree'] } })
        assert.equal(page.data.consent, true)
        let view = show(page)
        assert.equal(view.select('checkbox')[0].attrs.checked, true)
        assert.equal(tappable(view, 'onSign').attrs.disabled, false, 'consent enables signing')
        page.onClearSignature()
        assert.equal(page.data.hasSignature, false, '重写 clears the signature')
        view = show(page)
        assertShows(view, ['尚未签名', '请先阅读并同意协议'])
        assert.ok(shim.canvas('signature').ops.some((op) => op[0] === 'clearRect'))
        before = shim.state.requests.length
        assert.equal(await page.onSign(), null)
        assert.equal(shim.state.requests.length, before, 'no request without a signature')
        assert.equal(shim.lastToast().title, '请先手写签名')

        page.onConsentChange({ detail: { value: [] } })
        assert.equal(page.data.consent, false, 'unticking withdraws consent')
      })

      await t.test('a blank signature image is refused as SIGNATURE_IMAGE_INVALID', async () => {
        shim.setCanvasImage(shim.writeTempFile(shim.signaturePng({ width: 200, height: 80, stroke: false }), '.png'))
        page.onConsentChange({ detail: { value: ['agree'] } })
        drawStroke(page, STROKE)
        assert.equal(await page.onSign(), null)
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
        signed = await page.onSign()
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

        const opened = await page.onViewSigned()
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
        assert.deepEqual([...shim.state.storage.keys()].sort(), ['access_token', 'refresh_token'], 'nothing but the tokens is kept on the device')
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
  // The sign request: integer upload id, the boolean true, the verify_id string.
  const sign = sent.filter((r) => /\/sign$/.test(new URL(r.url).pathname)).pop()
  assert.ok(sign, 'a sign request was sent')
  assert.ok(Number.isInteger(sign.data.signature_upload_id) && sign.data.consent === true && typeof sign.data.verify_id === 'string')
})
