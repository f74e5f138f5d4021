/**
 * 后端 API 调用封装：wx.request / wx.uploadFile + 登录态 + 统一错误。
 *
 * - 自动加 baseUrl 前缀、Authorization: Bearer <access_token>、每次调用随机 X-Request-ID；
 * - 每个请求（含刷新令牌、上传、下载）都带 X-Device：本机第一次请求时用密码学安全随机数
 *   （wx.getRandomValues，基础库 2.15.0+；没有时用 crypto.getRandomValues）生成 32 位十六进制，
 *   存在本地存储 device_id 里，此后一直沿用（后端风控据此识别设备；清除本地存储即换一台“新设备”）；
 *   两种随机源都没有时不带这个头（不用 Math.random 凑数），下次请求再试；
 * - idempotent: true 的 POST 带 Idempotency-Key（同一次逻辑调用的重试沿用同一个 key，
 *   调用方也可以传 idempotencyKey 让用户层面的“重试”沿用它）；
 * - 收到 401 且本地有 refresh_token 时，调用一次 /api/v1/auth/refresh（并发请求共用同一次刷新，
 *   因为刷新令牌是轮换的，重复使用会让整个令牌族失效），保存新令牌后把原请求重试一次；
 *   刷新被拒绝则清除令牌并以 UNAUTHORIZED 拒绝；
 * - 任何非 2xx 都以 ApiError {status, code, message, field} 拒绝，
 *   解析后端统一错误格式 {"error": {"code", "message", "field"?}}；
 * - download 用 wx.downloadFile 带登录态下载文件（如合同 PDF），非 2xx 时读出临时文件里的错误体。
 */
const config = require('../config')

const ACCESS_KEY = 'access_token'
const REFRESH_KEY = 'refresh_token'
const DEVICE_KEY = 'device_id'
// 后端接受的设备 id（格式不对的会被当作没有）：这里生成的是 32 位小写十六进制。
const DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/
const DEVICE_ID_BYTES = 16
const FALLBACK_MESSAGE = '网络异常，请稍后再试'
const SESSION_EXPIRED_MESSAGE = '登录已过期，请重新登录'
const DEFAULT_TIMEOUT = 20000

class ApiError extends Error {
  constructor({ status, code, message, field, requestId }) {
    super(message || FALLBACK_MESSAGE)
    this.name = 'ApiError'
    this.status = status || 0
    this.code = code || 'UNKNOWN_ERROR'
    this.field = field || null
    this.requestId = requestId || null
  }
}

function getBaseUrl() {
  let base = null
  if (typeof getApp === 'function') {
    const app = getApp()
    if (app && app.globalData && app.globalData.baseUrl) base = app.globalData.baseUrl
  }
  if (!base) base = config.baseUrl
  return String(base).replace(/\/+$/, '')
}

function fullUrl(url) {
  if (/^https?:\/\//.test(url)) return url
  return getBaseUrl() + (url.charAt(0) === '/' ? url : '/' + url)
}

function randomHex(bytes) {
  let out = ''
  for (let i = 0; i < bytes; i++) {
    out += Math.floor(Math.random() * 256).toString(16).padStart(2, '0')
  }
  return out
}

function uuid4() {
  const h = randomHex(16).split('')
  h[12] = '4'
  h[16] = '89ab'.charAt(parseInt(h[16], 16) & 3)
  const s = h.join('')
  return s.slice(0, 8) + '-' + s.slice(8, 12) + '-' + s.slice(12, 16) + '-' + s.slice(16, 20) + '-' + s.slice(20)
}

// ---- device id (X-Device) ----

function toHex(bytes) {
  let out = ''
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] & 0xff).toString(16).padStart(2, '0')
  return out
}

/** globalThis.crypto.getRandomValues（Node、部分新基础库有），没有时返回 null。 */
function webCryptoBytes(n) {
  const c = typeof globalThis !== 'undefined' ? globalThis.crypto : undefined
  if (!c || typeof c.getRandomValues !== 'function') return null
  try {
    return c.getRandomValues(new Uint8Array(n))
  } catch (e) {
    return null
  }
}

/**
 * n 个密码学安全的随机字节 → Promise<Uint8Array | null>：先用 wx.getRandomValues（小程序的接口，异步），
 * 不支持或失败时用 crypto.getRandomValues；都没有则为 null。
 */
function secureRandomBytes(n) {
  return new Promise((resolve) => {
    if (typeof wx === 'undefined' || typeof wx.getRandomValues !== 'function') {
      resolve(webCryptoBytes(n))
      return
    }
    try {
      wx.getRandomValues({
        length: n,
        success(res) {
          const buf = res && res.randomValues
          const bytes = buf ? new Uint8Array(buf) : null
          resolve(bytes && bytes.length === n ? bytes : webCryptoBytes(n))
        },
        fail() {
          resolve(webCryptoBytes(n))
        }
      })
    } catch (e) {
      resolve(webCryptoBytes(n))
    }
  })
}

/** 本地存储里的设备 id；没有或格式不对时为 ''。 */
function getDeviceId() {
  const id = wx.getStorageSync(DEVICE_KEY)
  return typeof id === 'string' && DEVICE_ID_PATTERN.test(id) ? id : ''
}

let deviceIdPending = null

/**
 * Promise<设备 id>：已有就用已有的；否则生成一次并存下（并发的首批请求共用同一次生成）。
 * 没有安全随机源时为 ''（这次不带 X-Device，下次再试）。
 */
function ensureDeviceId() {
  const stored = getDeviceId()
  if (stored) return Promise.resolve(stored)
  if (deviceIdPending) return deviceIdPending
  deviceIdPending = secureRandomBytes(DEVICE_ID_BYTES).then((bytes) => {
    deviceIdPending = null
    const again = getDeviceId() // 期间别处已经存了（例如另一个页面实例）：沿用它
    if (again) return again
    if (!bytes) return ''
    const id = toHex(bytes)
    wx.setStorageSync(DEVICE_KEY, id)
    return id
  }, () => {
    deviceIdPending = null
    return ''
  })
  return deviceIdPending
}

/** 拿到设备 id 后再发送：本地已有时同步调用 send(id)，只有第一次要等随机数生成。 */
function withDeviceId(send) {
  const stored = getDeviceId()
  if (stored) return send(stored)
  return ensureDeviceId().then(send)
}

function getAccessToken() {
  return wx.getStorageSync(ACCESS_KEY) || ''
}

function getRefreshToken() {
  return wx.getStorageSync(REFRESH_KEY) || ''
}

function saveTokens(body) {
  if (body && body.access_token) wx.setStorageSync(ACCESS_KEY, body.access_token)
  if (body && body.refresh_token) wx.setStorageSync(REFRESH_KEY, body.refresh_token)
}

function clearTokens() {
  wx.removeStorageSync(ACCESS_KEY)
  wx.removeStorageSync(REFRESH_KEY)
}

function isLoggedIn() {
  return !!(getAccessToken() || getRefreshToken())
}

function headerValue(headers, name) {
  if (!headers) return null
  const lower = name.toLowerCase()
  for (const k of Object.keys(headers)) {
    if (k.toLowerCase() === lower) return headers[k]
  }
  return null
}

function parseBody(data) {
  if (typeof data !== 'string') return data
  if (data === '') return null
  try {
    return JSON.parse(data)
  } catch (e) {
    return data
  }
}

function toApiError(res) {
  const body = parseBody(res.data)
  const err = body && typeof body === 'object' && body.error && typeof body.error === 'object' ? body.error : {}
  return new ApiError({
    status: res.statusCode,
    code: err.code || 'HTTP_' + res.statusCode,
    message: err.message || FALLBACK_MESSAGE,
    field: err.field,
    requestId: headerValue(res.header, 'X-Request-ID')
  })
}

function networkError(err) {
  return new ApiError({
    status: 0,
    code: 'NETWORK_ERROR',
    message: FALLBACK_MESSAGE,
    field: null,
    requestId: null
  })
}

function isOk(status) {
  return status >= 200 && status < 300
}

function buildHeaders(opts, ctx, token, deviceId) {
  const header = Object.assign({}, opts.header || {})
  header['X-Request-ID'] = randomHex(16)
  if (deviceId) header['X-Device'] = deviceId
  if (token) header.Authorization = 'Bearer ' + token
  if (ctx.idempotencyKey) header['Idempotency-Key'] = ctx.idempotencyKey
  return header
}

// ---- token refresh (single-flight) ----

let refreshing = null

function refreshTokens() {
  if (refreshing) return refreshing
  const refreshToken = getRefreshToken()
  if (!refreshToken) {
    clearTokens()
    return Promise.reject(new ApiError({ status: 401, code: 'UNAUTHORIZED', message: SESSION_EXPIRED_MESSAGE }))
  }
  refreshing = withDeviceId((deviceId) => new Promise((resolve, reject) => {
    const header = { 'Content-Type': 'application/json', 'X-Request-ID': randomHex(16) }
    if (deviceId) header['X-Device'] = deviceId
    wx.request({
      url: fullUrl('/api/v1/auth/refresh'),
      method: 'POST',
      data: { refresh_token: refreshToken },
      header,
      timeout: DEFAULT_TIMEOUT,
      success(res) {
        if (isOk(res.statusCode)) {
          const body = parseBody(res.data)
          if (body && body.access_token) {
            saveTokens(body)
            resolve(body)
            return
          }
        }
        if (res.statusCode >= 400 && res.statusCode < 500) {
          // 刷新令牌无效、过期或已被使用：登录态作废。
          clearTokens()
          const cause = toApiError(res)
          const e = new ApiError({ status: 401, code: 'UNAUTHORIZED', message: SESSION_EXPIRED_MESSAGE, requestId: cause.requestId })
          e.cause = cause
          reject(e)
          return
        }
        // 服务端故障：令牌可能仍然有效，保留它，原样报错。
        reject(toApiError(res))
      },
      fail(err) {
        reject(networkError(err))
      }
    })
  }))
  const done = () => { refreshing = null }
  refreshing.then(done, done)
  return refreshing
}

/**
 * 执行一次带登录态的调用。send(token) 返回 Promise<{statusCode, data, header}>；
 * 2xx 时把响应交给 finish（默认解析 data 作为响应体）。
 */
function withAuth(send, opts, finish) {
  const useAuth = opts.auth !== false
  const tokenUsed = useAuth ? getAccessToken() : ''
  return send(tokenUsed).then((res) => {
    if (res.statusCode === 401 && useAuth && getRefreshToken()) {
      const current = getAccessToken()
      // 其它并发请求已经换过令牌：直接用新令牌重试；否则刷新一次。
      const ready = current && current !== tokenUsed && !refreshing ? Promise.resolve() : refreshTokens()
      return ready.then(() => send(getAccessToken()))
    }
    return res
  }).then((res) => {
    if (isOk(res.statusCode)) return finish ? finish(res) : parseBody(res.data)
    throw toApiError(res)
  })
}

/**
 * request({url, method, data, idempotent, idempotencyKey, auth, header, timeout}) → Promise<响应体>
 */
function request(opts) {
  const method = (opts.method || 'GET').toUpperCase()
  const ctx = {
    idempotencyKey: method === 'POST' && (opts.idempotent || opts.idempotencyKey) ? (opts.idempotencyKey || uuid4()) : null
  }
  const send = (token) => withDeviceId((deviceId) => new Promise((resolve, reject) => {
    const header = buildHeaders(opts, ctx, token, deviceId)
    if (method !== 'GET' && !headerValue(header, 'Content-Type')) header['Content-Type'] = 'application/json'
    wx.request({
      url: fullUrl(opts.url),
      method,
      data: opts.data,
      header,
      timeout: opts.timeout || DEFAULT_TIMEOUT,
      success: resolve,
      fail(err) {
        reject(networkError(err))
      }
    })
  }))
  return withAuth(send, opts)
}

/**
 * upload({url, filePath, name = 'file', formData}) → Promise<响应体>（uploadFile 的 data 是字符串）
 */
function upload(opts) {
  const ctx = { idempotencyKey: opts.idempotent || opts.idempotencyKey ? (opts.idempotencyKey || uuid4()) : null }
  const send = (token) => withDeviceId((deviceId) => new Promise((resolve, reject) => {
    wx.uploadFile({
      url: fullUrl(opts.url),
      filePath: opts.filePath,
      name: opts.name || 'file',
      formData: opts.formData || {},
      header: buildHeaders(opts, ctx, token, deviceId),
      timeout: opts.timeout || 60000,
      success: resolve,
      fail(err) {
        reject(networkError(err))
      }
    })
  }))
  return withAuth(send, opts)
}

/** 读出下载得到的临时文件的文本（非 2xx 时里面是后端的 JSON 错误）；读不了返回 ''。 */
function readTempText(filePath) {
  if (!filePath || typeof wx.getFileSystemManager !== 'function') return ''
  try {
    return wx.getFileSystemManager().readFileSync(filePath, 'utf8') || ''
  } catch (e) {
    return ''
  }
}

/**
 * download({url, header, timeout}) → Promise<{tempFilePath, statusCode, header}>
 * wx.downloadFile 带 Authorization / X-Request-ID / X-Device，401 时同样刷新一次令牌后重试；
 * 响应头（如 X-Content-SHA256）经 DownloadTask.onHeadersReceived 取得（取不到时为 {}）。
 */
function download(opts) {
  const ctx = { idempotencyKey: null }
  const send = (token) => withDeviceId((deviceId) => new Promise((resolve, reject) => {
    let headers = {}
    const task = wx.downloadFile({
      url: fullUrl(opts.url),
      header: buildHeaders(opts, ctx, token, deviceId),
      timeout: opts.timeout || 60000,
      success(res) {
        const out = { statusCode: res.statusCode, tempFilePath: res.tempFilePath || '', header: res.header || headers }
        if (!isOk(res.statusCode)) out.data = readTempText(res.tempFilePath)
        resolve(out)
      },
      fail(err) {
        reject(networkError(err))
      }
    })
    if (task && typeof task.onHeadersReceived === 'function') {
      task.onHeadersReceived((r) => {
        headers = (r && r.header) || {}
      })
    }
  }))
  return withAuth(send, opts, (res) => ({ tempFilePath: res.tempFilePath, statusCode: res.statusCode, header: res.header || {} }))
}

function wxLogin() {
  return new Promise((resolve, reject) => {
    wx.login({
      success(res) {
        if (res && res.code) resolve(res.code)
        else reject(new ApiError({ status: 0, code: 'WECHAT_LOGIN_FAILED', message: '微信登录失败，请重试' }))
      },
      fail() {
        reject(new ApiError({ status: 0, code: 'WECHAT_LOGIN_FAILED', message: '微信登录失败，请重试' }))
      }
    })
  })
}

/** wx.login → POST /api/v1/auth/login {code} → 保存令牌；返回登录响应（含 user）。 */
function login() {
  return wxLogin().then((code) => request({
    url: '/api/v1/auth/login',
    method: 'POST',
    data: { code },
    auth: false
  })).then((body) => {
    saveTokens(body)
    if (typeof getApp === 'function') {
      const app = getApp()
      if (app && app.globalData) app.globalData.user = body.user || null
    }
    return body
  })
}

function logout() {
  const done = () => {
    clearTokens()
    if (typeof getApp === 'function') {
      const app = getApp()
      if (app && app.globalData) app.globalData.user = null
    }
  }
  if (!getAccessToken()) {
    done()
    return Promise.resolve()
  }
  return request({ url: '/api/v1/auth/logout', method: 'POST' }).then(done, (err) => {
    done()
    if (err.status === 401) return
    throw err
  })
}

function showError(err) {
  const message = (err && err.message) || FALLBACK_MESSAGE
  wx.showToast({ title: message, icon: 'none', duration: 2500 })
}

module.exports = {
  ApiError,
  request,
  upload,
  download,
  headerValue,
  login,
  logout,
  showError,
  isLoggedIn,
  getAccessToken,
  getRefreshToken,
  saveTokens,
  clearTokens,
  refreshTokens,
  uuid4,
  randomHex,
  getDeviceId,
  ensureDeviceId,
  DEVICE_KEY,
  DEVICE_ID_PATTERN,
  FALLBACK_MESSAGE
}
