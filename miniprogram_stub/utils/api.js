/**
 * 后端 API 调用封装：wx.request / wx.uploadFile + 登录态 + 统一错误。
 *
 * - 自动加 baseUrl 前缀、Authorization: Bearer <access_token>、每次调用随机 X-Request-ID；
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

function buildHeaders(opts, ctx, token) {
  const header = Object.assign({}, opts.header || {})
  header['X-Request-ID'] = randomHex(16)
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
  refreshing = new Promise((resolve, reject) => {
    wx.request({
      url: fullUrl('/api/v1/auth/refresh'),
      method: 'POST',
      data: { refresh_token: refreshToken },
      header: { 'Content-Type': 'application/json', 'X-Request-ID': randomHex(16) },
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
  })
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
  const send = (token) => new Promise((resolve, reject) => {
    const header = buildHeaders(opts, ctx, token)
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
  })
  return withAuth(send, opts)
}

/**
 * upload({url, filePath, name = 'file', formData}) → Promise<响应体>（uploadFile 的 data 是字符串）
 */
function upload(opts) {
  const ctx = { idempotencyKey: opts.idempotent || opts.idempotencyKey ? (opts.idempotencyKey || uuid4()) : null }
  const send = (token) => new Promise((resolve, reject) => {
    wx.uploadFile({
      url: fullUrl(opts.url),
      filePath: opts.filePath,
      name: opts.name || 'file',
      formData: opts.formData || {},
      header: buildHeaders(opts, ctx, token),
      timeout: opts.timeout || 60000,
      success: resolve,
      fail(err) {
        reject(networkError(err))
      }
    })
  })
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
 * wx.downloadFile 带 Authorization / X-Request-ID，401 时同样刷新一次令牌后重试；
 * 响应头（如 X-Content-SHA256）经 DownloadTask.onHeadersReceived 取得（取不到时为 {}）。
 */
function download(opts) {
  const ctx = { idempotencyKey: null }
  const send = (token) => new Promise((resolve, reject) => {
    let headers = {}
    const task = wx.downloadFile({
      url: fullUrl(opts.url),
      header: buildHeaders(opts, ctx, token),
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
  })
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
  FALLBACK_MESSAGE
}
