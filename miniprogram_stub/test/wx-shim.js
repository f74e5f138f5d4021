/**
 * A small `wx` / `App` / `Page` / `getApp` shim so the mini-program's real JS runs under Node 20
 * against a live backend. Zero npm dependencies: node's fetch, FormData and Blob do the HTTP.
 *
 *   const shim = require('./wx-shim')
 *   shim.install({ baseUrl: process.env.BASE_URL })
 *   const page = shim.loadPage('pages/login/login')
 *   await page.onTapLogin()
 *
 * What the shim emulates:
 *   wx.request / wx.uploadFile   real HTTP (success for any HTTP status, fail on network errors;
 *                                uploadFile's res.data is a string, as in WeChat)
 *   wx.*StorageSync              in-memory (getStorageSync of a missing key returns '')
 *   wx.showToast etc.            recorded in shim.state.toasts / navigations
 *   wx.login                     asks the emulator: POST {baseUrl}/sandbox/control/login-code {openid}
 *   wx.requestFacialVerify       POST {baseUrl}/sandbox/control/face/{verifyId} {result: state.faceResult}
 *   wx.chooseMedia               hands out files queued with shim.queueMedia(path)
 *
 * Run directly (node --test picks up every file under test/), it self-tests the non-HTTP parts.
 */
'use strict'

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')

const ROOT = path.resolve(__dirname, '..')

const state = {
  baseUrl: 'http://127.0.0.1:8000',
  storage: new Map(),
  toasts: [],
  requests: [],
  navigations: [],
  modals: [],
  mediaQueue: [],
  faceResult: 'pass',
  openid: null,
  nextLoginCode: null,
  app: null,
  lastPage: null
}

// ---------- helpers ----------

function clone(value) {
  if (value === undefined) return undefined
  return JSON.parse(JSON.stringify(value))
}

function callback(opts, ok, res) {
  try {
    if (ok && typeof opts.success === 'function') opts.success(res)
    if (!ok && typeof opts.fail === 'function') opts.fail(res)
  } finally {
    if (typeof opts.complete === 'function') opts.complete(res)
  }
}

function headersToObject(headers) {
  const out = {}
  headers.forEach((value, key) => {
    out[key] = value
  })
  return out
}

function encodeQuery(data) {
  return Object.keys(data)
    .filter((k) => data[k] !== undefined && data[k] !== null)
    .map((k) => encodeURIComponent(k) + '=' + encodeURIComponent(typeof data[k] === 'object' ? JSON.stringify(data[k]) : String(data[k])))
    .join('&')
}

function findHeader(header, name) {
  const lower = name.toLowerCase()
  for (const k of Object.keys(header || {})) if (k.toLowerCase() === lower) return header[k]
  return undefined
}

function withoutHeader(header, name) {
  const lower = name.toLowerCase()
  const out = {}
  for (const k of Object.keys(header || {})) if (k.toLowerCase() !== lower) out[k] = header[k]
  return out
}

const MIME = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.webp': 'image/webp', '.pdf': 'application/pdf' }

/** Sets (possibly nested) data the way Page#setData does: keys may be paths like 'a.b[0].c'. */
function setPath(target, key, value) {
  const parts = []
  String(key).replace(/[^.[\]]+|\[(\d+)\]/g, (m, idx) => {
    parts.push(idx !== undefined ? Number(idx) : m)
    return m
  })
  let cur = target
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i]
    if (cur[p] === null || typeof cur[p] !== 'object') cur[p] = typeof parts[i + 1] === 'number' ? [] : {}
    cur = cur[p]
  }
  cur[parts[parts.length - 1]] = value
}

async function postJson(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body || {})
  })
  const text = await res.text()
  let json = null
  try {
    json = text ? JSON.parse(text) : null
  } catch (e) {
    json = null
  }
  return { status: res.status, json, text }
}

// ---------- wx ----------

const wx = {
  request(opts) {
    const controller = new AbortController()
    const method = String(opts.method || 'GET').toUpperCase()
    let url = opts.url
    let header = Object.assign({}, opts.header || {})
    let body
    const data = opts.data
    if (data !== undefined && data !== null) {
      if (method === 'GET' || method === 'HEAD') {
        if (typeof data === 'object') {
          const q = encodeQuery(data)
          if (q) url += (url.includes('?') ? '&' : '?') + q
        } else if (data !== '') {
          url += (url.includes('?') ? '&' : '?') + String(data)
        }
      } else {
        const ctype = String(findHeader(header, 'Content-Type') || 'application/json')
        if (!findHeader(header, 'Content-Type')) header['Content-Type'] = ctype
        if (typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) body = data
        else if (ctype.includes('application/x-www-form-urlencoded')) body = encodeQuery(data)
        else body = JSON.stringify(data)
      }
    }
    const record = { kind: 'request', method, url, header: clone(header), data: clone(data), statusCode: null }
    state.requests.push(record)
    const timeout = opts.timeout || 60000
    const timer = setTimeout(() => controller.abort(), timeout)
    fetch(url, { method, headers: header, body, signal: controller.signal })
      .then(async (res) => {
        const text = await res.text()
        let parsed = text
        if ((opts.dataType || 'json') === 'json' && text !== '') {
          try {
            parsed = JSON.parse(text)
          } catch (e) {
            parsed = text
          }
        }
        record.statusCode = res.status
        record.response = parsed
        clearTimeout(timer)
        callback(opts, true, { statusCode: res.status, data: parsed, header: headersToObject(res.headers), cookies: [], errMsg: 'request:ok' })
      })
      .catch((err) => {
        clearTimeout(timer)
        record.error = String(err && err.message)
        callback(opts, false, { errMsg: 'request:fail ' + (controller.signal.aborted ? 'timeout' : String(err && err.message)), errno: 600001 })
      })
    return { abort: () => controller.abort(), onHeadersReceived() {}, offHeadersReceived() {} }
  },

  uploadFile(opts) {
    const controller = new AbortController()
    const header = withoutHeader(opts.header || {}, 'Content-Type')
    const record = { kind: 'upload', method: 'POST', url: opts.url, header: clone(header), data: clone(opts.formData || {}), filePath: opts.filePath, statusCode: null }
    state.requests.push(record)
    const timer = setTimeout(() => controller.abort(), opts.timeout || 60000)
    Promise.resolve()
      .then(() => fs.promises.readFile(opts.filePath))
      .then((buf) => {
        const form = new FormData()
        const fields = opts.formData || {}
        for (const k of Object.keys(fields)) form.append(k, String(fields[k]))
        const type = MIME[path.extname(opts.filePath).toLowerCase()] || 'application/octet-stream'
        form.append(opts.name || 'file', new Blob([buf], { type }), path.basename(opts.filePath))
        return fetch(opts.url, { method: 'POST', headers: header, body: form, signal: controller.signal })
      })
      .then(async (res) => {
        const text = await res.text()
        clearTimeout(timer)
        record.statusCode = res.status
        record.response = text
        // As in WeChat, uploadFile does not parse the body: data is a string.
        callback(opts, true, { statusCode: res.status, data: text, header: headersToObject(res.headers), errMsg: 'uploadFile:ok' })
      })
      .catch((err) => {
        clearTimeout(timer)
        record.error = String(err && err.message)
        callback(opts, false, { errMsg: 'uploadFile:fail ' + String(err && err.message) })
      })
    return { abort: () => controller.abort(), onProgressUpdate() {}, offProgressUpdate() {} }
  },

  getStorageSync(key) {
    return state.storage.has(key) ? clone(state.storage.get(key)) : ''
  },
  setStorageSync(key, value) {
    state.storage.set(key, clone(value))
  },
  removeStorageSync(key) {
    state.storage.delete(key)
  },
  clearStorageSync() {
    state.storage.clear()
  },

  showToast(opts) {
    state.toasts.push({ title: opts.title, icon: opts.icon || 'success', duration: opts.duration })
    callback(opts, true, { errMsg: 'showToast:ok' })
  },
  hideToast() {},
  showLoading(opts) {
    callback(opts || {}, true, { errMsg: 'showLoading:ok' })
  },
  hideLoading() {},
  showModal(opts) {
    state.modals.push({ title: opts.title, content: opts.content })
    callback(opts, true, { confirm: true, cancel: false, errMsg: 'showModal:ok' })
  },

  navigateTo(opts) {
    state.navigations.push({ type: 'navigateTo', url: opts.url })
    callback(opts, true, { errMsg: 'navigateTo:ok' })
  },
  redirectTo(opts) {
    state.navigations.push({ type: 'redirectTo', url: opts.url })
    callback(opts, true, { errMsg: 'redirectTo:ok' })
  },
  reLaunch(opts) {
    state.navigations.push({ type: 'reLaunch', url: opts.url })
    callback(opts, true, { errMsg: 'reLaunch:ok' })
  },
  switchTab(opts) {
    state.navigations.push({ type: 'switchTab', url: opts.url })
    callback(opts, true, { errMsg: 'switchTab:ok' })
  },
  navigateBack(opts) {
    opts = opts || {}
    state.navigations.push({ type: 'navigateBack', delta: opts.delta || 1 })
    callback(opts, true, { errMsg: 'navigateBack:ok' })
  },
  stopPullDownRefresh() {},

  login(opts) {
    const done = (ok, res) => callback(opts, ok, res)
    if (state.nextLoginCode !== null) {
      const code = state.nextLoginCode
      state.nextLoginCode = null
      setImmediate(() => done(true, { code, errMsg: 'login:ok' }))
      return
    }
    postJson(state.baseUrl + '/sandbox/control/login-code', { openid: state.openid })
      .then((res) => {
        if (res.status >= 200 && res.status < 300 && res.json && res.json.code) done(true, { code: res.json.code, errMsg: 'login:ok' })
        else done(false, { errMsg: 'login:fail emulator answered ' + res.status + ' ' + res.text })
      })
      .catch((err) => done(false, { errMsg: 'login:fail ' + err.message }))
  },

  requestFacialVerify(opts) {
    const result = state.faceResult
    postJson(state.baseUrl + '/sandbox/control/face/' + encodeURIComponent(opts.verifyId), { result })
      .then((res) => {
        if (res.status < 200 || res.status >= 300) {
          callback(opts, false, { errMsg: 'requestFacialVerify:fail emulator answered ' + res.status + ' ' + res.text, errCode: 90002 })
        } else if (result === 'pass') {
          callback(opts, true, { errMsg: 'requestFacialVerify:ok', errCode: 0, verifyId: opts.verifyId })
        } else {
          callback(opts, false, { errMsg: 'requestFacialVerify:fail face not matched', errCode: 90100, verifyId: opts.verifyId })
        }
      })
      .catch((err) => callback(opts, false, { errMsg: 'requestFacialVerify:fail ' + err.message, errCode: 90001 }))
  },

  chooseMedia(opts) {
    const file = state.mediaQueue.shift()
    setImmediate(() => {
      if (!file) {
        callback(opts, false, { errMsg: 'chooseMedia:fail cancel' })
        return
      }
      const size = fs.statSync(file).size
      callback(opts, true, { type: 'image', tempFiles: [{ tempFilePath: file, size, fileType: 'image' }], errMsg: 'chooseMedia:ok' })
    })
  },

  getSystemInfoSync() {
    return { platform: 'devtools', SDKVersion: '3.4.0', version: '8.0.50' }
  }
}

// ---------- App / Page / getApp ----------

let pendingPage = null

function App(obj) {
  const app = Object.assign({}, obj)
  app.globalData = Object.assign({}, obj.globalData || {})
  state.app = app
}

function Page(obj) {
  pendingPage = obj
}

function getApp() {
  return state.app
}

function makePage(obj, route) {
  const page = {}
  for (const key of Object.keys(obj)) {
    if (key === 'data') continue
    page[key] = typeof obj[key] === 'function' ? obj[key] : clone(obj[key])
  }
  page.data = clone(obj.data || {})
  page.route = route
  page.setData = function setData(patch, cb) {
    for (const key of Object.keys(patch || {})) setPath(this.data, key, clone(patch[key]))
    if (typeof cb === 'function') cb()
  }
  return page
}

/** Installs the globals, points config.js (and app.globalData) at baseUrl and loads app.js. */
function install(options) {
  options = options || {}
  if (options.baseUrl) state.baseUrl = String(options.baseUrl).replace(/\/+$/, '')
  state.openid = options.openid || 'o_node_' + crypto.randomBytes(6).toString('hex')
  global.wx = wx
  global.App = App
  global.Page = Page
  global.getApp = getApp
  const config = require(path.join(ROOT, 'config.js'))
  config.baseUrl = state.baseUrl
  const appFile = path.join(ROOT, 'app.js')
  delete require.cache[require.resolve(appFile)]
  require(appFile)
  return module.exports
}

/** Requires pages/<route>.js afresh and returns a page instance (data cloned, setData attached). */
function loadPage(route) {
  if (!global.wx) install()
  const file = path.join(ROOT, route.replace(/^\/+/, '') + '.js')
  const resolved = require.resolve(file)
  delete require.cache[resolved]
  pendingPage = null
  require(resolved)
  if (!pendingPage) throw new Error('page ' + route + ' did not call Page({...})')
  const page = makePage(pendingPage, route.replace(/^\/+/, ''))
  pendingPage = null
  state.lastPage = page
  return page
}

/** Forgets the login state, toasts, requests and navigations; a new WeChat user (openid). */
function reset(options) {
  options = options || {}
  state.storage.clear()
  state.toasts.length = 0
  state.requests.length = 0
  state.navigations.length = 0
  state.modals.length = 0
  state.mediaQueue.length = 0
  state.faceResult = 'pass'
  state.nextLoginCode = null
  state.openid = options.openid || 'o_node_' + crypto.randomBytes(6).toString('hex')
  if (state.app) state.app.globalData.user = null
}

function queueMedia(filePath) {
  state.mediaQueue.push(filePath)
}

function lastToast() {
  return state.toasts[state.toasts.length - 1] || null
}

/** POST to the sandbox control API; returns {status, json, text} (or {status, buffer, contentType} with raw). */
async function control(pathname, body, opts) {
  const url = state.baseUrl + '/sandbox/control/' + pathname.replace(/^\/+/, '')
  if (opts && opts.raw) {
    const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}) })
    const buffer = Buffer.from(await res.arrayBuffer())
    return { status: res.status, buffer, contentType: res.headers.get('content-type') || '' }
  }
  return postJson(url, body)
}

/** Writes bytes to a fresh temp file (the "temp file path" chooseMedia would hand out). */
function writeTempFile(buffer, ext) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxtmp-'))
  const file = path.join(dir, 'tmp_' + crypto.randomBytes(6).toString('hex') + (ext || ''))
  fs.writeFileSync(file, buffer)
  return file
}

module.exports = { wx, state, install, loadPage, reset, queueMedia, lastToast, control, writeTempFile, setPath, ROOT }

// ---------- self-test (node --test runs every file under test/) ----------

if (require.main === module) {
  const test = require('node:test')
  const assert = require('node:assert/strict')

  test('wx-shim: setData merges paths into data', () => {
    const target = { user: { id: 1, phone: null }, list: [] }
    setPath(target, 'user.phone', '138****5678')
    setPath(target, 'list[1].ok', true)
    setPath(target, 'flat', 'x')
    assert.deepEqual(target.user, { id: 1, phone: '138****5678' })
    assert.deepEqual(target.list[1], { ok: true })
    assert.equal(target.flat, 'x')
  })

  test('wx-shim: storage is in-memory and returns "" for missing keys', () => {
    wx.setStorageSync('k', { a: 1 })
    assert.deepEqual(wx.getStorageSync('k'), { a: 1 })
    wx.removeStorageSync('k')
    assert.equal(wx.getStorageSync('k'), '')
  })

  test('wx-shim: loadPage gives a page instance with its own data and setData', () => {
    install({ baseUrl: 'http://127.0.0.1:9' })
    const a = loadPage('pages/login/login')
    const b = loadPage('pages/login/login')
    a.setData({ phone: '138****5678' })
    assert.equal(a.data.phone, '138****5678')
    assert.equal(b.data.phone, '')
    assert.equal(typeof a.onGetPhoneNumber, 'function')
    assert.equal(getApp().globalData.baseUrl, 'http://127.0.0.1:9')
  })
}
