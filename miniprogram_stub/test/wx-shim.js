/**
 * A small `wx` / `App` / `Page` / `getApp` shim so the mini-program's real JS runs under Node 20
 * against a live backend. Zero npm dependencies: node's fetch, FormData and Blob do the HTTP.
 *
 *   const shim = require('./wx-shim')
 *   shim.install({ baseUrl: process.env.BASE_URL })
 *   const page = shim.loadPage('pages/login/login')
 *   await shim.tap(page, '微信登录')   // the button labelled 微信登录 on the rendered page: its bindtap runs
 *
 * What the shim emulates:
 *   wx.request / wx.uploadFile   real HTTP (success for any HTTP status, fail on network errors;
 *                                uploadFile's res.data is a string, as in WeChat)
 *   wx.*StorageSync              in-memory (getStorageSync of a missing key returns '')
 *   wx.showToast etc.            recorded in shim.state.toasts / navigations
 *   wx.login                     asks the emulator: POST {baseUrl}/sandbox/control/login-code {openid}
 *   wx.requestFacialVerify       POST {baseUrl}/sandbox/control/face/{verifyId} {result: state.faceResult}
 *   wx.requestPayment            checks the five parameters (timeStamp, nonceStr, package "prepay_id=…", signType
 *                                "RSA", paySign), then plays the user's payment as queued with shim.queuePayment(…)
 *                                (default SUCCESS): 'cancel' → fail {errMsg: 'requestPayment:fail cancel'} without
 *                                the emulator; SUCCESS / PAYERROR → POST {baseUrl}/sandbox/control/pay/{prepay_id}
 *                                {result, notify} (WeChat Pay's emulator), success / fail as WeChat would;
 *                                recorded in shim.state.payments
 *   wx.requestSubscribeMessage   {tmplIds (1-3)}: only inside a tap (as WeChat: "can only be invoked by user TAP
 *                                gesture"); the user answers state.subscribeAnswer ('accept' by default, or
 *                                'reject'); accepted ids → POST {baseUrl}/sandbox/control/subscriptions {openid,
 *                                template_ids}, so the emulator lets one message of each through (else 43101);
 *                                success {errMsg: 'requestSubscribeMessage:ok', <id>: 'accept'|'reject'};
 *                                recorded in state.subscriptions
 *   wx.chooseMedia               hands out files queued with shim.queueMedia(path)
 *   wx.downloadFile              real HTTP GET with the given headers; the body (any status) goes to a
 *                                temp file: success {statusCode, tempFilePath}; DownloadTask.onHeadersReceived
 *   wx.openDocument              recorded in shim.state.documents (fails if the file does not exist)
 *   wx.getFileSystemManager      readFileSync / readFile over node:fs
 *   wx.createSelectorQuery       select('#id').fields({node, size}).exec(): a fake <canvas type="2d"> node
 *                                whose 2d context records its calls (shim.canvas('id').ops)
 *   wx.canvasToTempFilePath      hands out the PNG set with shim.setCanvasImage(path) (the test draws it)
 *   wx.getRandomValues           {length} → success {randomValues: ArrayBuffer} from node:crypto (base library ≥ 2.15.0;
 *                                on an older emulated one it fails as not supported); calls counted in
 *                                state.randomValuesCalls
 *   wx.canIUse                   true for wx APIs that exist in the emulated base library: state.sdkVersion,
 *                                by default project.config.json's libVersion (MIN_SDK lists the APIs that
 *                                need a newer one, e.g. requestFacialVerify ≥ 3.8.12); getSystemInfoSync /
 *                                getAppBaseInfo report it as SDKVersion
 *
 * Rendering: like WeChat, a page is rendered when it is created and after every setData, here with the strict
 * renderer in wxml.js. Each render is recorded in state.renders {route, via, live, text}; a render that throws
 * is recorded in state.renderErrors {route, via, keys, message} (the page code carries on, as a blank page
 * would): tests assert that list is empty. `live` means the page has received a backend response since it was
 * loaded and its data is no longer its initial data. shim.render(page) renders explicitly (and throws).
 *
 * Run directly (node --test picks up every file under test/), it self-tests the non-HTTP parts.
 */
'use strict'

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')
const zlib = require('node:zlib')

const ROOT = path.resolve(__dirname, '..')

/** The base library the project declares (project.config.json libVersion). */
function declaredLibVersion() {
  try {
    return String(JSON.parse(fs.readFileSync(path.join(ROOT, 'project.config.json'), 'utf8')).libVersion || '')
  } catch (e) {
    return ''
  }
}

/** compareVersion('3.8.12', '3.10.0') < 0, as WeChat's docs suggest comparing base library versions. */
function compareVersion(a, b) {
  const pa = String(a).split('.')
  const pb = String(b).split('.')
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = parseInt(pa[i] || '0', 10)
    const y = parseInt(pb[i] || '0', 10)
    if (x !== y) return x > y ? 1 : -1
  }
  return 0
}

// APIs the shim provides that need a newer base library than 1.x (WeChat's docs).
const MIN_SDK = {
  requestFacialVerify: '3.8.12',
  getRandomValues: '2.15.0',
  getWindowInfo: '2.20.1',
  getAppBaseInfo: '2.20.1',
  chooseMedia: '2.10.0',
  createSelectorQuery: '1.4.0',
  canvasToTempFilePath: '1.0.0',
  openDocument: '1.4.0',
  getFileSystemManager: '1.9.9'
}

// wx.requestPayment's parameters (the backend's pay_params).
const PAY_PARAM_KEYS = ['timeStamp', 'nonceStr', 'package', 'signType', 'paySign']

const state = {
  baseUrl: 'http://127.0.0.1:8000',
  storage: new Map(),
  toasts: [],
  requests: [],
  navigations: [],
  modals: [],
  mediaQueue: [],
  documents: [],
  canvases: new Map(),
  canvasImage: null,
  canvasExports: [],
  faceResult: 'pass',
  paymentQueue: [],
  payments: [],
  randomValuesCalls: 0,
  openid: null,
  loginOpenid: null,
  subscribeAnswer: 'accept',
  subscriptions: [],
  inTap: false,
  nextLoginCode: null,
  app: null,
  lastPage: null,
  sdkVersion: declaredLibVersion() || '3.8.12',
  responseCount: 0,
  renderOnSetData: true,
  renders: [],
  renderErrors: [],
  taps: []
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

// ---------- canvas (type="2d") ----------

const CANVAS_SIZE = { width: 300, height: 150 }
const CONTEXT_METHODS = [
  'beginPath', 'closePath', 'moveTo', 'lineTo', 'quadraticCurveTo', 'bezierCurveTo', 'arc', 'rect',
  'stroke', 'fill', 'clearRect', 'fillRect', 'strokeRect', 'scale', 'setTransform', 'resetTransform',
  'translate', 'rotate', 'save', 'restore', 'drawImage', 'fillText'
]

/** A fake 2d context: every call and property set is appended to ops as [name, ...args]. */
function makeContext2d() {
  const ops = []
  const ctx = { ops, lineWidth: 1, strokeStyle: '#000000', fillStyle: '#000000', lineCap: 'butt', lineJoin: 'miter' }
  for (const name of CONTEXT_METHODS) ctx[name] = (...args) => { ops.push([name, ...args]) }
  return new Proxy(ctx, {
    set(target, key, value) {
      if (key !== 'ops') ops.push(['set ' + String(key), value])
      target[key] = value
      return true
    }
  })
}

function canvasNode(id) {
  if (!state.canvases.has(id)) {
    let context = null
    state.canvases.set(id, {
      id,
      _type: 'canvas',
      width: CANVAS_SIZE.width,
      height: CANVAS_SIZE.height,
      get ops() {
        return context ? context.ops : []
      },
      getContext(kind) {
        if (kind !== '2d') return null
        if (!context) context = makeContext2d()
        return context
      },
      createImage() {
        return { src: '', width: 0, height: 0, onload: null, onerror: null }
      }
    })
  }
  return state.canvases.get(id)
}

class SelectorQuery {
  constructor() {
    this.queue = []
  }

  in() {
    return this
  }

  select(selector) {
    const query = this
    const id = String(selector).replace(/^#/, '')
    const add = (fn, cb) => {
      query.queue.push({ fn, cb })
      return query
    }
    return {
      fields(spec, cb) {
        return add(() => {
          const out = { id }
          if (spec && spec.node) out.node = canvasNode(id)
          if (spec && spec.size) Object.assign(out, CANVAS_SIZE)
          return out
        }, cb)
      },
      node(cb) {
        return add(() => ({ node: canvasNode(id) }), cb)
      },
      boundingClientRect(cb) {
        return add(() => ({ id, left: 0, top: 0, right: CANVAS_SIZE.width, bottom: CANVAS_SIZE.height, width: CANVAS_SIZE.width, height: CANVAS_SIZE.height }), cb)
      }
    }
  }

  exec(cb) {
    const items = this.queue.splice(0)
    setImmediate(() => {
      const results = items.map((item) => {
        const r = item.fn()
        if (typeof item.cb === 'function') item.cb(r)
        return r
      })
      if (typeof cb === 'function') cb(results)
    })
  }
}

function extensionFor(url, contentType) {
  const ct = String(contentType || '').split(';')[0].trim().toLowerCase()
  for (const ext of Object.keys(MIME)) if (MIME[ext] === ct) return ext
  if (ct === 'application/json') return '.json'
  const m = /\.([a-z0-9]{1,5})(?:[?#]|$)/i.exec(new URL(url).pathname)
  return m ? '.' + m[1].toLowerCase() : ''
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
        state.responseCount++
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
        state.responseCount++
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

  downloadFile(opts) {
    const controller = new AbortController()
    const header = Object.assign({}, opts.header || {})
    const record = { kind: 'download', method: 'GET', url: opts.url, header: clone(header), statusCode: null }
    state.requests.push(record)
    const listeners = []
    const timer = setTimeout(() => controller.abort(), opts.timeout || 60000)
    fetch(opts.url, { method: 'GET', headers: header, signal: controller.signal })
      .then(async (res) => {
        const buf = Buffer.from(await res.arrayBuffer())
        clearTimeout(timer)
        const file = writeTempFile(buf, extensionFor(opts.url, res.headers.get('content-type')))
        const headers = headersToObject(res.headers)
        record.statusCode = res.status
        state.responseCount++
        record.tempFilePath = file
        record.responseHeader = headers
        for (const fn of listeners.slice()) fn({ header: headers })
        // As in WeChat: success for any HTTP status; the body is in the temp file.
        callback(opts, true, { statusCode: res.status, tempFilePath: file, dataLength: buf.length, errMsg: 'downloadFile:ok' })
      })
      .catch((err) => {
        clearTimeout(timer)
        record.error = String(err && err.message)
        callback(opts, false, { errMsg: 'downloadFile:fail ' + (controller.signal.aborted ? 'timeout' : String(err && err.message)) })
      })
    return {
      abort: () => controller.abort(),
      onHeadersReceived(fn) {
        listeners.push(fn)
      },
      offHeadersReceived(fn) {
        const i = listeners.indexOf(fn)
        if (i >= 0) listeners.splice(i, 1)
      },
      onProgressUpdate() {},
      offProgressUpdate() {}
    }
  },

  openDocument(opts) {
    setImmediate(() => {
      if (!opts.filePath || !fs.existsSync(opts.filePath)) {
        callback(opts, false, { errMsg: 'openDocument:fail file not found' })
        return
      }
      state.documents.push({ filePath: opts.filePath, fileType: opts.fileType || null, showMenu: !!opts.showMenu })
      callback(opts, true, { errMsg: 'openDocument:ok' })
    })
  },

  getFileSystemManager() {
    const enc = (e) => (e ? (String(e).toLowerCase() === 'utf-8' ? 'utf8' : e) : null)
    const toResult = (buf, e) => (e ? buf.toString(enc(e)) : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length))
    return {
      readFileSync(filePath, encoding) {
        return toResult(fs.readFileSync(filePath), encoding)
      },
      readFile(opts) {
        fs.promises.readFile(opts.filePath)
          .then((buf) => callback(opts, true, { data: toResult(buf, opts.encoding), errMsg: 'readFile:ok' }))
          .catch((err) => callback(opts, false, { errMsg: 'readFile:fail ' + err.message }))
      }
    }
  },

  createSelectorQuery() {
    return new SelectorQuery()
  },

  canvasToTempFilePath(opts) {
    setImmediate(() => {
      if (!opts.canvas && !opts.canvasId) {
        callback(opts, false, { errMsg: 'canvasToTempFilePath:fail canvas or canvasId is required' })
        return
      }
      const file = state.canvasImage
      if (!file || !fs.existsSync(file)) {
        callback(opts, false, { errMsg: 'canvasToTempFilePath:fail no image set (shim.setCanvasImage)' })
        return
      }
      state.canvasExports.push({ canvas: opts.canvas ? opts.canvas.id : opts.canvasId, fileType: opts.fileType || 'png', tempFilePath: file })
      callback(opts, true, { tempFilePath: file, errMsg: 'canvasToTempFilePath:ok' })
    })
  },

  /** wx.getRandomValues({length, success, fail, complete}): cryptographically secure bytes (async, as in WeChat). */
  getRandomValues(opts) {
    opts = opts || {}
    state.randomValuesCalls++
    setImmediate(() => {
      if (compareVersion(state.sdkVersion, MIN_SDK.getRandomValues) < 0) {
        callback(opts, false, { errMsg: 'getRandomValues:fail not supported in base library ' + state.sdkVersion })
        return
      }
      const length = opts.length
      if (!Number.isInteger(length) || length < 1 || length > 1048576) {
        callback(opts, false, { errMsg: 'getRandomValues:fail parameter error: length should be an integer in [1, 1048576]' })
        return
      }
      const buf = crypto.randomBytes(length)
      callback(opts, true, { randomValues: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length), errMsg: 'getRandomValues:ok' })
    })
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
        if (res.status >= 200 && res.status < 300 && res.json && res.json.code) {
          state.loginOpenid = res.json.openid || null
          done(true, { code: res.json.code, errMsg: 'login:ok' })
        }
        else done(false, { errMsg: 'login:fail emulator answered ' + res.status + ' ' + res.text })
      })
      .catch((err) => done(false, { errMsg: 'login:fail ' + err.message }))
  },

  /** wx.requestSubscribeMessage({tmplIds, success, fail, complete}): see the header. */
  requestSubscribeMessage(opts) {
    opts = opts || {}
    const ids = opts.tmplIds
    const record = { tmplIds: clone(ids), answer: null, errMsg: null }
    state.subscriptions.push(record)
    const finish = (ok, res) => {
      record.errMsg = res.errMsg
      callback(opts, ok, res)
    }
    if (!state.inTap) {
      setImmediate(() => finish(false, { errMsg: 'requestSubscribeMessage:fail can only be invoked by user TAP gesture.' }))
      return
    }
    if (!Array.isArray(ids) || ids.length < 1 || ids.length > 3 || ids.some((id) => typeof id !== 'string' || !id)) {
      setImmediate(() => finish(false, { errMsg: 'requestSubscribeMessage:fail parameter error: tmplIds must be 1-3 template ids' }))
      return
    }
    const answer = state.subscribeAnswer === 'reject' ? 'reject' : 'accept'
    record.answer = answer
    const res = { errMsg: 'requestSubscribeMessage:ok' }
    for (const id of ids) res[id] = answer
    if (answer !== 'accept') {
      setImmediate(() => finish(true, res))
      return
    }
    postJson(state.baseUrl + '/sandbox/control/subscriptions', { openid: state.openid || state.loginOpenid, template_ids: ids })
      .then((r) => {
        if (r.status >= 200 && r.status < 300) finish(true, res)
        else finish(false, { errMsg: 'requestSubscribeMessage:fail emulator answered ' + r.status + ' ' + r.text })
      })
      .catch((err) => finish(false, { errMsg: 'requestSubscribeMessage:fail ' + err.message }))
  },

  requestFacialVerify(opts) {
    if (!wx.canIUse('requestFacialVerify')) {
      setImmediate(() => callback(opts, false, { errMsg: 'requestFacialVerify:fail not supported in base library ' + state.sdkVersion, errCode: -1 }))
      return
    }
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

  /**
   * wx.requestPayment({timeStamp, nonceStr, package, signType, paySign, success, fail, complete}): the five
   * parameters must be non-empty strings, signType 'RSA' and package 'prepay_id=…' (else fail with a parameter
   * error, nothing paid). The outcome is the next one queued with queuePayment() (default SUCCESS, notify send).
   */
  requestPayment(opts) {
    opts = opts || {}
    const params = {}
    for (const k of PAY_PARAM_KEYS) params[k] = opts[k]
    const record = { params: clone(params), prepayId: null, outcome: null, emulator: null, errMsg: null }
    state.payments.push(record)
    const finish = (ok, res) => {
      record.errMsg = res.errMsg
      callback(opts, ok, res)
    }
    const missing = PAY_PARAM_KEYS.filter((k) => typeof opts[k] !== 'string' || opts[k] === '')
    const m = /^prepay_id=(\S+)$/.exec(typeof opts.package === 'string' ? opts.package : '')
    let problem = null
    if (missing.length) problem = 'missing ' + missing.join(', ')
    else if (opts.signType !== 'RSA') problem = 'signType must be RSA, got ' + JSON.stringify(opts.signType)
    else if (!m) problem = 'package must be prepay_id=…, got ' + JSON.stringify(opts.package)
    if (problem) {
      setImmediate(() => finish(false, { errMsg: 'requestPayment:fail parameter error: ' + problem }))
      return
    }
    record.prepayId = m[1]
    let outcome = state.paymentQueue.length ? state.paymentQueue.shift() : 'SUCCESS'
    if (typeof outcome === 'string') outcome = outcome === 'cancel' ? { cancel: true } : { result: outcome }
    record.outcome = clone(outcome)
    if (outcome.cancel) {
      // The user closed WeChat's cashier: nothing is sent to WeChat Pay.
      setImmediate(() => finish(false, { errMsg: 'requestPayment:fail cancel' }))
      return
    }
    const body = { result: outcome.result || 'SUCCESS', notify: outcome.notify || 'send' }
    postJson(state.baseUrl + '/sandbox/control/pay/' + encodeURIComponent(record.prepayId), body)
      .then((res) => {
        record.emulator = { status: res.status, json: res.json }
        if (res.status < 200 || res.status >= 300) {
          finish(false, { errMsg: 'requestPayment:fail emulator answered ' + res.status + ' ' + res.text })
        } else if (res.json && res.json.trade_state === 'SUCCESS') {
          finish(true, { errMsg: 'requestPayment:ok' })
        } else {
          finish(false, { errMsg: 'requestPayment:fail ' + ((res.json && res.json.trade_state) || 'unknown') })
        }
      })
      .catch((err) => finish(false, { errMsg: 'requestPayment:fail ' + err.message }))
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

  /** wx.canIUse('requestFacialVerify'), 'getWindowInfo.return.pixelRatio', 'button.open-type.getPhoneNumber'. */
  canIUse(schema) {
    const name = String(schema || '').split('.')[0]
    if (!name) return false
    if (typeof wx[name] === 'function' || name === 'canIUse') {
      return !MIN_SDK[name] || compareVersion(state.sdkVersion, MIN_SDK[name]) >= 0
    }
    // Components (button.open-type.getPhoneNumber, canvas.type.2d…): yes for the built-in ones.
    return wxml().BUILTIN_TAGS.has(name)
  },

  getSystemInfoSync() {
    return { platform: 'devtools', SDKVersion: state.sdkVersion, version: '8.0.50', pixelRatio: 2, windowWidth: 375, windowHeight: 667 }
  },

  getAppBaseInfo() {
    return { SDKVersion: state.sdkVersion, version: '8.0.50', language: 'zh_CN', theme: 'light', enableDebug: false }
  },

  getWindowInfo() {
    return { pixelRatio: 2, windowWidth: 375, windowHeight: 667, screenWidth: 375, screenHeight: 667 }
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

let wxmlModule = null

function wxml() {
  if (!wxmlModule) wxmlModule = require('./wxml')
  return wxmlModule
}

/** Renders the page's .wxml with its data (strict: throws a WxmlError) and records the render. */
function renderNow(page, via) {
  const meta = page.__shim
  const out = wxml().renderPage(page)
  const live = state.responseCount > meta.responsesAtLoad && JSON.stringify(page.data) !== meta.initialJson
  state.renders.push({ route: page.route, via, live, text: out.text })
  return out
}

/** The automatic render WeChat does on load and after setData: an error is recorded, not thrown. */
function autoRender(page, via, keys) {
  if (!state.renderOnSetData) return
  try {
    renderNow(page, via)
  } catch (err) {
    state.renderErrors.push({ route: page.route, via, keys: keys || [], message: String(err && err.message) })
  }
}

function makePage(obj, route) {
  const page = {}
  for (const key of Object.keys(obj)) {
    if (key === 'data') continue
    page[key] = typeof obj[key] === 'function' ? obj[key] : clone(obj[key])
  }
  page.data = clone(obj.data || {})
  page.route = route
  Object.defineProperty(page, '__shim', {
    value: { initialJson: JSON.stringify(page.data), responsesAtLoad: state.responseCount },
    enumerable: false
  })
  page.setData = function setData(patch, cb) {
    for (const key of Object.keys(patch || {})) setPath(this.data, key, clone(patch[key]))
    autoRender(this, 'setData', Object.keys(patch || {}))
    if (typeof cb === 'function') cb()
  }
  autoRender(page, 'load')
  return page
}

/** Renders a page now (strict WXML renderer, see wxml.js): {text, tree, select}. Throws on a binding error. */
function render(page) {
  return renderNow(page || state.lastPage, 'explicit')
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
  state.documents.length = 0
  state.canvases.clear()
  state.canvasImage = null
  state.canvasExports.length = 0
  state.faceResult = 'pass'
  state.paymentQueue.length = 0
  state.subscriptions.length = 0
  state.subscribeAnswer = 'accept'
  state.loginOpenid = null
  state.payments.length = 0
  state.randomValuesCalls = 0
  state.nextLoginCode = null
  state.sdkVersion = declaredLibVersion() || '3.8.12'
  state.renders.length = 0
  state.renderErrors.length = 0
  state.taps.length = 0
  state.openid = options.openid || 'o_node_' + crypto.randomBytes(6).toString('hex')
  if (state.app) state.app.globalData.user = null
}

function queueMedia(filePath) {
  state.mediaQueue.push(filePath)
}

/**
 * How the user's next wx.requestPayment ends: 'cancel' (closes the cashier), 'SUCCESS' or 'PAYERROR' (played on
 * WeChat Pay's emulator), or {result, notify: 'send' | 'drop' | 'delay'}. Unqueued payments succeed.
 */
function queuePayment(outcome) {
  state.paymentQueue.push(outcome)
}

/** The PNG that wx.canvasToTempFilePath hands out (what the user "drew"). */
function setCanvasImage(filePath) {
  state.canvasImage = filePath
}

/** The fake canvas node with the given id (its ops list the 2d context calls). */
function canvas(id) {
  return canvasNode(id)
}

// ---------- PNG (pure Node: zlib + CRC32) ----------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

function crc32(buf) {
  let c = 0xffffffff
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function pngChunk(type, data) {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([len, body, crc])
}

/** Encodes width×height RGBA pixels (a Buffer of width*height*4 bytes) as a PNG (colour type 6, no filter). */
function encodePng(width, height, rgba) {
  if (rgba.length !== width * height * 4) throw new Error('encodePng: expected ' + width * height * 4 + ' bytes')
  const stride = width * 4
  const raw = Buffer.alloc((stride + 1) * height)
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0
    rgba.copy(raw, y * (stride + 1) + 1, y * stride, (y + 1) * stride)
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 6 // RGBA
  ihdr[10] = 0
  ihdr[11] = 0
  ihdr[12] = 0
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0))
  ])
}

/**
 * A "handwritten signature": a transparent width×height canvas with a dark diagonal stroke
 * (pass stroke: false for a blank one).
 */
function signaturePng(options) {
  options = options || {}
  const width = options.width || 200
  const height = options.height || 80
  const rgba = Buffer.alloc(width * height * 4)
  if (options.stroke !== false) {
    const thickness = 2
    for (let x = 0; x < width; x++) {
      const cy = Math.round(((height - 1) * x) / (width - 1))
      for (let y = Math.max(0, cy - thickness); y <= Math.min(height - 1, cy + thickness); y++) {
        const i = (y * width + x) * 4
        rgba[i] = 0x1a
        rgba[i + 1] = 0x1a
        rgba[i + 2] = 0x2e
        rgba[i + 3] = 0xff
      }
    }
  }
  return encodePng(width, height, rgba)
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

// ---------- tapping by label, as a person would ----------

const TAP_EVENTS = ['bindtap', 'catchtap', 'bind:tap', 'catch:tap', 'capture-bind:tap', 'capture-catch:tap']
// <button open-type="…">: WeChat answers the tap with its own event (the user's consent), not a tap.
const OPEN_TYPE_EVENTS = { getPhoneNumber: ['bindgetphonenumber', 'bind:getphonenumber'] }

/** The handler a tap on this element calls: [attribute, method name], or null when it is not tappable. */
function tapHandlerOf(el) {
  const names = OPEN_TYPE_EVENTS[el.attrs['open-type']] || TAP_EVENTS
  for (const name of names) if (el.events[name]) return [name, el.events[name]]
  return null
}

/** An element's visible text as a person reads it: its lines joined by a space. */
function labelOf(el) {
  return wxml().textOf(el).split('\n').join(' ')
}

/**
 * The element a person reaches by tapping the words `label` on the rendered page `view` (shim.render): an element
 * with a tap handler whose visible text is `label`, or the nearest such ancestor of a text `label` (the tap bubbles
 * up to it). Hidden elements are not seen. Several such elements (a list's 删除 buttons) are told apart with
 * `{within: text}`: the one whose nearest surrounding element showing `text` holds no other. Throws, naming the
 * labels that are there, when there is none or more than one.
 */
function findTappable(view, label, options) {
  options = options || {}
  const found = [] // {el, path}
  const add = (el, pathToIt) => {
    if (!found.some((f) => f.el === el)) found.push({ el, path: pathToIt })
  }
  const shown = [] // what a person could tap, for the error message
  const walk = (n, ancestors) => {
    if (n.type === 'text') {
      if (n.text.replace(/\s+/g, ' ').trim() !== label) return
      for (let i = ancestors.length - 1; i >= 0; i--) {
        if (tapHandlerOf(ancestors[i])) return add(ancestors[i], ancestors.slice(0, i + 1))
      }
      return
    }
    if (n.type === 'element') {
      if (n.hidden) return
      if (tapHandlerOf(n)) {
        shown.push(labelOf(n))
        if (labelOf(n) === label) add(n, ancestors.concat([n]))
      }
    }
    const inner = n.type === 'element' ? ancestors.concat([n]) : ancestors
    n.children.forEach((c) => walk(c, inner))
  }
  walk(view.tree, [])
  let candidates = found
  if (options.within !== undefined) {
    const within = String(options.within)
    candidates = found.filter((f) => {
      const around = [...f.path].reverse().find((a) => labelOf(a).includes(within))
      return around && found.filter((g) => g.path.includes(around)).length === 1
    })
  }
  const where = options.within !== undefined ? ' within ' + JSON.stringify(options.within) : ''
  if (!candidates.length) {
    throw new Error('nothing labelled ' + JSON.stringify(label) + where + ' to tap; tappable: ' + JSON.stringify(shown) + '\n' + view.text)
  }
  if (candidates.length > 1) {
    throw new Error(candidates.length + ' elements labelled ' + JSON.stringify(label) + where + ': say which with {within}')
  }
  return candidates[0].el
}

/**
 * Taps what is labelled `label` on the page, as a person would: renders the page with its current data (strict),
 * finds the element (findTappable), refuses a disabled one (WeChat sends a disabled button no tap), and calls the
 * handler its WXML names with the event WeChat would give it (currentTarget.dataset from its data-* attributes;
 * `detail` from options, e.g. what getPhoneNumber answers). Returns what the handler returns (a promise for an
 * async one). Recorded in state.taps {route, label, handler}.
 */
function tap(page, label, options) {
  return tapOn(render(page), page, label, options)
}

/** tap() on a view already rendered (shim.render, or wxml.renderString for the self-test). */
function tapOn(view, page, label, options) {
  options = options || {}
  const el = findTappable(view, label, options)
  const [event, handler] = tapHandlerOf(el)
  if (el.attrs.disabled) throw new Error(JSON.stringify(label) + ' on ' + page.route + ' is disabled: a person cannot tap it')
  if (typeof page[handler] !== 'function') throw new Error(event + '="' + handler + '" on ' + page.route + ' is not a method of the page')
  const target = { id: el.attrs.id || '', dataset: Object.assign({}, el.dataset) }
  state.taps.push({ route: page.route, label, handler })
  state.inTap = true // what runs synchronously in the handler runs "in the tap" (wx.requestSubscribeMessage)
  try {
    return page[handler]({
      type: event.replace(/^(capture-)?(bind|catch):?/, ''),
      timeStamp: Date.now(),
      target,
      currentTarget: target,
      detail: options.detail !== undefined ? options.detail : { x: 0, y: 0 }
    })
  } finally {
    state.inTap = false
  }
}

module.exports = {
  wx, state, install, loadPage, reset, queueMedia, queuePayment, setCanvasImage, canvas, lastToast, control, writeTempFile, setPath,
  encodePng, signaturePng, crc32, render, tap, findTappable, compareVersion, declaredLibVersion, MIN_SDK, ROOT
}

// ---------- self-test (node --test runs every file under test/) ----------

if (require.main === module) {
  const test = require('node:test')
  const assert = require('node:assert/strict')

  test('wx-shim: wx.requestSubscribeMessage only works inside a tap, for 1-3 templates', async () => {
    const call = (tmplIds) => new Promise((resolve) => wx.requestSubscribeMessage({ tmplIds, success: resolve, fail: resolve }))
    const outside = await call(['T1'])
    assert.equal(outside.errMsg, 'requestSubscribeMessage:fail can only be invoked by user TAP gesture.')
    state.inTap = true
    const tooMany = call(['a', 'b', 'c', 'd'])
    state.inTap = false
    assert.match((await tooMany).errMsg, /^requestSubscribeMessage:fail parameter error/)
    state.subscribeAnswer = 'reject'
    state.inTap = true
    const rejected = call(['T1'])
    state.inTap = false
    assert.deepEqual(await rejected, { errMsg: 'requestSubscribeMessage:ok', T1: 'reject' })  // nothing sent
    state.subscribeAnswer = 'accept'
  })

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

  test('wx-shim: encodePng writes a valid PNG (signature, CRC32, inflatable IDAT)', () => {
    assert.equal(crc32(Buffer.from('IEND')), 0xae426082)
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926)
    const png = signaturePng({ width: 200, height: 80 })
    assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    assert.equal(png.toString('ascii', 12, 16), 'IHDR')
    assert.equal(png.readUInt32BE(16), 200)
    assert.equal(png.readUInt32BE(20), 80)
    let off = 8
    const chunks = []
    while (off < png.length) {
      const len = png.readUInt32BE(off)
      const type = png.toString('ascii', off + 4, off + 8)
      const data = png.subarray(off + 8, off + 8 + len)
      assert.equal(png.readUInt32BE(off + 8 + len), crc32(png.subarray(off + 4, off + 8 + len)), type + ' CRC')
      chunks.push({ type, data })
      off += 12 + len
    }
    assert.deepEqual(chunks.map((c) => c.type), ['IHDR', 'IDAT', 'IEND'])
    const raw = zlib.inflateSync(chunks[1].data)
    assert.equal(raw.length, (200 * 4 + 1) * 80)
    // The stroke: the first pixel is dark and opaque, a far corner is transparent.
    assert.deepEqual([...raw.subarray(1, 5)], [0x1a, 0x1a, 0x2e, 0xff])
    const alpha = (x, y) => raw[(200 * 4 + 1) * y + 1 + x * 4 + 3]
    assert.equal(alpha(199, 79), 0xff, 'bottom-right end of the diagonal')
    assert.equal(alpha(0, 79), 0, 'bottom-left corner is transparent')
    assert.equal(alpha(199, 0), 0, 'top-right corner is transparent')
  })

  test('wx-shim: a selector query hands out a 2d canvas node that records drawing', async () => {
    reset()
    const res = await new Promise((resolve) => wx.createSelectorQuery().select('#signature').fields({ node: true, size: true }).exec(resolve))
    const node = res[0].node
    assert.equal(res[0].width, 300)
    const ctx = node.getContext('2d')
    ctx.lineWidth = 3
    ctx.beginPath()
    ctx.moveTo(1, 2)
    ctx.lineTo(3, 4)
    assert.deepEqual(canvas('signature').ops, [['set lineWidth', 3], ['beginPath'], ['moveTo', 1, 2], ['lineTo', 3, 4]])
  })

  test('wx-shim: requestPayment checks its five parameters; a cancel fails without calling the emulator', async () => {
    install({ baseUrl: 'http://127.0.0.1:9' })
    reset()
    const pay = (params) => new Promise((resolve) => {
      const out = {}
      wx.requestPayment(Object.assign({}, params, {
        success: (res) => { out.success = res },
        fail: (res) => { out.fail = res },
        complete: () => resolve(out)
      }))
    })
    const good = { timeStamp: '1764460800', nonceStr: 'n0nce', package: 'prepay_id=wx201410272009395522657a690389285100', signType: 'RSA', paySign: 'c2ln' }
    let out = await pay(Object.assign({}, good, { paySign: undefined }))
    assert.match(out.fail.errMsg, /^requestPayment:fail parameter error: missing paySign/)
    out = await pay(Object.assign({}, good, { signType: 'MD5' }))
    assert.match(out.fail.errMsg, /signType must be RSA/)
    out = await pay(Object.assign({}, good, { package: 'wx2014' }))
    assert.match(out.fail.errMsg, /package must be prepay_id=/)
    queuePayment('cancel')
    const realFetch = global.fetch
    let fetched = 0
    global.fetch = () => { fetched++; return Promise.reject(new Error('no network here')) }
    try {
      out = await pay(good)
    } finally {
      global.fetch = realFetch
    }
    assert.deepEqual(out, { fail: { errMsg: 'requestPayment:fail cancel' } })
    assert.equal(fetched, 0, 'a cancel never reaches WeChat Pay')
    assert.equal(state.payments.length, 4)
    assert.deepEqual(state.payments[3].outcome, { cancel: true })
    assert.equal(state.payments[3].prepayId, 'wx201410272009395522657a690389285100')
    assert.equal(state.payments[0].prepayId, null, 'refused before any payment')
    reset()
    assert.deepEqual([state.payments.length, state.paymentQueue.length], [0, 0])
  })

  test('wx-shim: canIUse follows the emulated base library (project.config.json libVersion by default)', () => {
    reset()
    assert.equal(state.sdkVersion, declaredLibVersion())
    assert.equal(wx.getSystemInfoSync().SDKVersion, state.sdkVersion)
    assert.equal(wx.getAppBaseInfo().SDKVersion, state.sdkVersion)
    assert.equal(wx.canIUse('request'), true)
    assert.equal(wx.canIUse('noSuchApi'), false)
    assert.equal(wx.canIUse('button.open-type.getPhoneNumber'), true)
    assert.equal(wx.canIUse('requestFacialVerify'), compareVersion(state.sdkVersion, '3.8.12') >= 0)
    state.sdkVersion = '3.8.11'
    assert.equal(wx.canIUse('requestFacialVerify'), false)
    state.sdkVersion = '3.8.12'
    assert.equal(wx.canIUse('requestFacialVerify'), true)
    assert.equal(compareVersion('3.10.0', '3.8.12'), 1)
    assert.equal(compareVersion('3.8', '3.8.0'), 0)
    reset()
  })

  test('wx-shim: pages render on load and after setData; a render error is recorded', () => {
    install({ baseUrl: 'http://127.0.0.1:9' })
    reset()
    const page = loadPage('pages/login/login')
    assert.deepEqual(state.renders.map((r) => [r.route, r.via, r.live]), [['pages/login/login', 'load', false]])
    page.setData({ user: { id: 7, phone: null }, phone: '' })
    assert.match(state.renders[1].text, /用户编号\n7/)
    assert.deepEqual(state.renderErrors, [])
    page.setData({ user: { phone: null } }) // no id: the template binds user.id
    assert.equal(state.renderErrors.length, 1)
    assert.match(state.renderErrors[0].message, /no key "id" in \{\{user\.id\}\}/)
    assert.deepEqual(state.renderErrors[0].keys, ['user'])
    assert.throws(() => render(page), /no key "id"/)
    reset()
  })

  test('wx-shim: tap finds what to tap by its visible label and calls the handler its WXML names', async () => {
    const wxmlLib = require('./wxml')
    const calls = []
    const page = {
      route: 'inline',
      data: { items: [{ id: 1, plate: '粤B12345' }, { id: 2, plate: '京A54321' }], busy: false, shown: false },
      onGo(e) { calls.push(['onGo', e.type, e.currentTarget.dataset]); return 'went' },
      onRemove(e) { calls.push(['onRemove', e.currentTarget.dataset.id]) },
      onOpen(e) { calls.push(['onOpen', e.currentTarget.dataset.id]) },
      onHidden() { calls.push(['onHidden']) },
      onPhone(e) { calls.push(['onPhone', e.type, e.detail.code]) }
    }
    const src = '<button bindtap="onGo" data-step="two" disabled="{{busy}}">下一步</button>\n' +
      '<view wx:for="{{items}}" wx:key="id" class="row" bindtap="onOpen" data-id="{{item.id}}">' +
      '<text>{{item.plate}}</text><button catchtap="onRemove" data-id="{{item.id}}">删除</button></view>\n' +
      '<view hidden="{{!shown}}"><button bindtap="onHidden">隐藏的</button></view>\n' +
      '<button open-type="getPhoneNumber" bindgetphonenumber="onPhone">授权手机号</button>\n'
    const view = () => wxmlLib.renderString(src, page.data, { methods: page })
    assert.equal(tapOn(view(), page, '下一步'), 'went')
    tapOn(view(), page, '删除', { within: '京A54321' })
    tapOn(view(), page, '粤B12345') // the row's text: the tap bubbles up to the row's bindtap
    tapOn(view(), page, '授权手机号', { detail: { code: 'c1' } })
    page.data.busy = true
    assert.throws(() => tapOn(view(), page, '下一步'), /"下一步" on inline is disabled/)
    assert.deepEqual(calls, [['onGo', 'tap', { step: 'two' }], ['onRemove', 2], ['onOpen', 1], ['onPhone', 'getphonenumber', 'c1']])
    assert.throws(() => findTappable(view(), '确认'), /nothing labelled "确认" to tap; tappable: \["下一步",/)
    assert.throws(() => findTappable(view(), '删除'), /2 elements labelled "删除": say which with \{within\}/)
    assert.throws(() => findTappable(view(), '删除', { within: '沪C' }), /nothing labelled "删除" within "沪C"/)
    assert.throws(() => findTappable(view(), '隐藏的'), /nothing labelled "隐藏的"/)
    assert.throws(() => findTappable(view(), '下一'), /nothing labelled "下一"/) // the whole label, not a part
  })

  test('wx-shim: tap renders the page, refuses a disabled button and records the tap', async () => {
    install({ baseUrl: 'http://127.0.0.1:9' })
    reset()
    const page = loadPage('pages/login/login')
    let called = 0
    page.onTapLogin = () => ++called
    assert.equal(tap(page, '微信登录'), 1)
    assert.deepEqual(state.taps, [{ route: 'pages/login/login', label: '微信登录', handler: 'onTapLogin' }])
    page.setData({ loggingIn: true })
    assert.throws(() => tap(page, '微信登录'), /"微信登录" on pages\/login\/login is disabled/)
    assert.equal(called, 1)
    assert.throws(() => tap(page, '立即登录'), /nothing labelled "立即登录"/)
    reset()
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
