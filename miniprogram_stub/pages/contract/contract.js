const api = require('../../utils/api')
const errors = require('../../utils/errors')
const face = require('../../utils/face')
const contracts = require('../../utils/contracts')

const TEMPLATE_PATTERN = /^[a-z][a-z0-9_]{0,31}$/
const STROKE = { width: 3, color: '#1a1a2e' }
// 手写轨迹总长度达到这么多（逻辑像素）才算签了名，避免误触的一个点。
const MIN_STROKE_LENGTH = 20
const STAGES = {
  uploading: '正在保存签名…',
  face: '正在进行人脸核验…',
  signing: '正在签署…'
}

function decodeOption(value) {
  if (value === undefined || value === null) return ''
  try {
    return decodeURIComponent(String(value)).trim()
  } catch (e) {
    return String(value).trim()
  }
}

/** subject_id 是业务的整数 id（开户申请、ETC 绑定）；没有为 null，不是正整数为 NaN。 */
function parseSubjectId(value) {
  const text = decodeOption(value)
  if (!text) return null
  return /^[1-9]\d{0,15}$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : NaN
}

function pixelRatio() {
  try {
    if (typeof wx.getWindowInfo === 'function') return wx.getWindowInfo().pixelRatio || 1
    return wx.getSystemInfoSync().pixelRatio || 1
  } catch (e) {
    return 1
  }
}

/** 触摸事件里相对 canvas 的坐标（canvas 组件的 touches 带 x / y）。 */
function touchPoint(e) {
  const t = e && ((e.touches && e.touches[0]) || (e.changedTouches && e.changedTouches[0]))
  if (!t) return null
  const x = t.x !== undefined ? t.x : t.clientX
  const y = t.y !== undefined ? t.y : t.clientY
  if (typeof x !== 'number' || typeof y !== 'number') return null
  return { x, y }
}

function localError(code, message) {
  return new api.ApiError({ status: 0, code, message: message || errors.MESSAGES[code] })
}

function openDocument(filePath, showMenu) {
  return new Promise((resolve, reject) => {
    wx.openDocument({
      filePath,
      fileType: 'pdf',
      showMenu: !!showMenu,
      success: () => resolve(filePath),
      fail: () => reject(localError('DOCUMENT_OPEN_FAILED', '无法打开协议文件，请稍后再试'))
    })
  })
}

Page({
  data: {
    template: 'privacy_consent',
    subjectId: null,
    title: contracts.titleOf('privacy_consent'),
    loading: false,
    contract: null,
    signed: false,
    expiresAt: '',
    signedAt: '',
    consent: false,
    hasSignature: false,
    signing: false,
    stage: '',
    stageText: '',
    verifyId: '',
    downloading: '',
    pdfPath: '',
    signedPdfPath: '',
    loadingEvidence: false,
    evidence: null,
    events: [],
    error: null
  },

  /**
   * options: {template = 'privacy_consent', subject_id?}（account_agreement / etc_autodebit 需要 subject_id，
   * 页面参数是字符串，按整数发送；不是正整数时不发请求，提示 SUBJECT_NOT_FOUND）。
   */
  onLoad(options) {
    options = options || {}
    const template = decodeOption(options.template) || 'privacy_consent'
    const subjectId = parseSubjectId(options.subject_id)
    this.setData({ template, subjectId: Number.isNaN(subjectId) ? null : subjectId, title: contracts.titleOf(template) })
    if (!TEMPLATE_PATTERN.test(template)) {
      return Promise.resolve(this.fail(localError('CONTRACT_TEMPLATE_NOT_FOUND')))
    }
    if (Number.isNaN(subjectId)) return Promise.resolve(this.fail(localError('SUBJECT_NOT_FOUND')))
    return Promise.all([this.prepare(), this.loadTitle()]).then((results) => results[0])
  },

  onReady() {
    return this.initCanvas()
  },

  /** POST /api/v1/contracts {template, subject_id?}（subject_id 为整数）：取得（或新建）待签署的协议。 */
  prepare() {
    if (this.data.loading) return Promise.resolve(null)
    const data = { template: this.data.template }
    if (this.data.subjectId !== null) data.subject_id = this.data.subjectId
    this.setData({ loading: true, error: null })
    return api.request({ url: '/api/v1/contracts', method: 'POST', data }).then((contract) => {
      this.setData({ loading: false })
      this.showContract(contract)
      return contract
    }).catch((err) => {
      this.setData({ loading: false })
      return this.fail(err)
    })
  },

  /** 模板的正式名称以后端为准（GET /api/v1/contracts/templates）；取不到就用本地名称。 */
  loadTitle() {
    return api.request({ url: '/api/v1/contracts/templates' }).then((body) => {
      const list = (body && body.templates) || []
      const found = list.find((t) => t && t.code === this.data.template)
      if (found && found.title) this.setData({ title: found.title })
      return found || null
    }).catch(() => null)
  },

  showContract(contract) {
    const signed = !!contract && contract.status === 'signed'
    this.setData({
      contract,
      signed,
      expiresAt: contract ? contracts.formatTime(contract.expires_at) : '',
      signedAt: contract ? contracts.formatTime(contract.signed_at) : ''
    })
  },

  // ---------- 查看合同 ----------

  onViewContract() {
    return this.openPdf('unsigned')
  },

  onViewSigned() {
    return this.openPdf('signed')
  },

  /**
   * 下载 /pdf 或 /signed.pdf 并用 wx.openDocument 打开；resolve {filePath, sha256}（sha256 为响应头
   * X-Content-SHA256，须与页面展示的一致），失败 resolve null。
   */
  openPdf(kind) {
    const contract = this.data.contract
    if (!contract || this.data.downloading) return Promise.resolve(null)
    const signedCopy = kind === 'signed'
    if (signedCopy && !this.data.signed) return Promise.resolve(this.fail(localError('CONTRACT_NOT_SIGNED')))
    const expected = String((signedCopy ? contract.signed_sha256 : contract.sha256) || '').toLowerCase()
    this.setData({ downloading: kind, error: null })
    return api.download({
      url: '/api/v1/contracts/' + encodeURIComponent(contract.id) + (signedCopy ? '/signed.pdf' : '/pdf')
    }).then((res) => {
      const served = String(api.headerValue(res.header, 'X-Content-SHA256') || '').toLowerCase()
      if (served && expected && served !== expected) {
        throw localError('CONTRACT_HASH_MISMATCH', '协议文件校验不一致，请稍后重新打开')
      }
      return openDocument(res.tempFilePath, signedCopy).then(() => {
        const update = { downloading: '' }
        update[signedCopy ? 'signedPdfPath' : 'pdfPath'] = res.tempFilePath
        this.setData(update)
        return { filePath: res.tempFilePath, sha256: served || expected }
      })
    }).catch((err) => {
      this.setData({ downloading: '' })
      return this.fail(err)
    })
  },

  // ---------- 同意 ----------

  onConsentChange(e) {
    const values = (e && e.detail && e.detail.value) || []
    this.setData({ consent: values.indexOf('agree') >= 0 })
  },

  // ---------- 手写签名（<canvas type="2d" id="signature">） ----------

  /** 取 canvas 节点，按像素比设置画布大小和笔触；resolve canvas（取不到为 null）。 */
  initCanvas() {
    return new Promise((resolve) => {
      wx.createSelectorQuery().select('#signature').fields({ node: true, size: true }).exec((res) => {
        const info = res && res[0]
        if (!info || !info.node) {
          resolve(null)
          return
        }
        const canvas = info.node
        const dpr = pixelRatio()
        canvas.width = info.width * dpr
        canvas.height = info.height * dpr
        const ctx = canvas.getContext('2d')
        ctx.scale(dpr, dpr)
        ctx.lineWidth = STROKE.width
        ctx.strokeStyle = STROKE.color
        ctx.lineCap = 'round'
        ctx.lineJoin = 'round'
        this.canvas = canvas
        this.ctx = ctx
        this.canvasSize = { width: info.width, height: info.height }
        this.strokeLength = 0
        resolve(canvas)
      })
    })
  },

  onTouchStart(e) {
    const p = touchPoint(e)
    if (!p || !this.ctx || this.data.signing) return
    this.drawing = true
    this.lastPoint = p
    this.ctx.beginPath()
    this.ctx.moveTo(p.x, p.y)
  },

  onTouchMove(e) {
    const p = touchPoint(e)
    if (!p || !this.drawing || !this.ctx) return
    this.ctx.lineTo(p.x, p.y)
    this.ctx.stroke()
    const last = this.lastPoint || p
    this.strokeLength = (this.strokeLength || 0) + Math.sqrt((p.x - last.x) * (p.x - last.x) + (p.y - last.y) * (p.y - last.y))
    this.lastPoint = p
    if (!this.data.hasSignature && this.strokeLength >= MIN_STROKE_LENGTH) this.setData({ hasSignature: true })
  },

  onTouchEnd() {
    this.drawing = false
    this.lastPoint = null
  },

  /** “重写”：清空画布。 */
  onClearSignature() {
    if (this.ctx && this.canvasSize) this.ctx.clearRect(0, 0, this.canvasSize.width, this.canvasSize.height)
    this.strokeLength = 0
    this.drawing = false
    this.setData({ hasSignature: false })
  },

  /** 把画布导出为 PNG 临时文件。 */
  exportSignature() {
    const ready = this.canvas ? Promise.resolve(this.canvas) : this.initCanvas()
    return ready.then((canvas) => new Promise((resolve, reject) => {
      if (!canvas) {
        reject(localError('SIGNATURE_REQUIRED'))
        return
      }
      wx.canvasToTempFilePath({
        canvas,
        fileType: 'png',
        success(res) {
          if (res && res.tempFilePath) resolve(res.tempFilePath)
          else reject(localError('SIGNATURE_EXPORT_FAILED', '签名保存失败，请重写后再试'))
        },
        fail() {
          reject(localError('SIGNATURE_EXPORT_FAILED', '签名保存失败，请重写后再试'))
        }
      })
    }))
  },

  // ---------- 签署 ----------

  /** 本地检查能否签署；返回 {code, message} 或 null。 */
  checkReady() {
    const d = this.data
    if (!d.contract) {
      return d.loading
        ? { code: 'CONTRACT_NOT_READY', message: '协议加载中，请稍候' }
        : { code: 'CONTRACT_NOT_READY', message: '协议未能加载，请返回重试' }
    }
    if (d.contract.status === 'expired') return { code: 'CONTRACT_EXPIRED', message: errors.MESSAGES.CONTRACT_EXPIRED }
    if (!d.consent) return { code: 'CONSENT_REQUIRED', message: errors.MESSAGES.CONSENT_REQUIRED }
    if (!d.hasSignature) return { code: 'SIGNATURE_REQUIRED', message: errors.MESSAGES.SIGNATURE_REQUIRED }
    // 签署前的意愿核验要调起人脸核身 2.0：低版本微信在上传签名之前就提示升级。
    if (!face.isSupported()) return { code: 'WECHAT_UPGRADE_REQUIRED', message: errors.MESSAGES.WECHAT_UPGRADE_REQUIRED }
    return null
  },

  setStage(stage) {
    this.setData({ stage, stageText: STAGES[stage] || '' })
  },

  /**
   * 签署：手写签名 → 上传（kind: signature）→ 人脸核验（意愿确认）→
   * POST /api/v1/contracts/{id}/sign {signature_upload_id, consent: true, verify_id}。
   * 已签署的协议再次提交时重发同一请求（后端对已签署的协议原样返回）。
   */
  onSign() {
    if (this.data.signing) return Promise.resolve(null)
    if (this.data.signed && this.lastSignRequest) return this.submitSign(this.lastSignRequest)
    const problem = this.checkReady()
    if (problem) {
      wx.showToast({ title: problem.message, icon: 'none' })
      this.setData({ error: { code: problem.code, message: problem.message, field: null } })
      return Promise.resolve(null)
    }
    this.setData({ signing: true, error: null })
    this.setStage('uploading')
    let signatureUploadId = null
    return this.exportSignature().then((filePath) => api.upload({
      url: '/api/v1/uploads',
      filePath,
      name: 'file',
      formData: { kind: 'signature' }
    })).then((body) => {
      signatureUploadId = body.id
      this.setStage('face')
      return face.verifyFace({ onVerifyId: (verifyId) => this.setData({ verifyId }) })
    }).then((outcome) => {
      if (!outcome.result || !outcome.result.passed) throw localError('FACE_NOT_PASSED')
      this.setData({ signing: false })
      return this.submitSign({
        contractId: this.data.contract.id,
        body: { signature_upload_id: signatureUploadId, consent: true, verify_id: outcome.verifyId }
      })
    }).catch((err) => {
      this.setData({ signing: false, stage: '', stageText: '' })
      return this.fail(err)
    })
  },

  submitSign(req) {
    this.setData({ signing: true, error: null })
    this.setStage('signing')
    return api.request({
      url: '/api/v1/contracts/' + encodeURIComponent(req.contractId) + '/sign',
      method: 'POST',
      data: req.body
    }).then((contract) => {
      this.lastSignRequest = req
      this.setData({ signing: false, stage: '', stageText: '' })
      this.showContract(contract)
      if (contract.status === 'signed') wx.showToast({ title: '签署成功', icon: 'success' })
      return contract
    }).catch((err) => {
      this.setData({ signing: false, stage: '', stageText: '' })
      return this.fail(err)
    })
  },

  // ---------- 存证 ----------

  /** GET /api/v1/contracts/{id}/evidence：签署存证与哈希链审计事件。 */
  onShowEvidence() {
    const contract = this.data.contract
    if (!contract || this.data.loadingEvidence) return Promise.resolve(null)
    this.setData({ loadingEvidence: true, error: null })
    return api.request({ url: '/api/v1/contracts/' + encodeURIComponent(contract.id) + '/evidence' }).then((body) => {
      const evidence = (body && body.evidence) || null
      const events = ((body && body.events) || []).map((e) => ({
        seq: e.seq,
        action: e.action,
        at: contracts.formatTime(e.at),
        hash: e.hash,
        shortHash: String(e.hash || '').slice(0, 16)
      }))
      this.setData({
        loadingEvidence: false,
        evidence: evidence ? Object.assign({}, evidence, { signedAtText: contracts.formatTime(evidence.signed_at) }) : null,
        events
      })
      return body
    }).catch((err) => {
      this.setData({ loadingEvidence: false })
      return this.fail(err)
    })
  },

  // ---------- 出错之后 ----------

  /** 协议过期或不存在：重新发起一份。 */
  onRestart() {
    this.lastSignRequest = null
    this.setData({ contract: null, signed: false, consent: false, evidence: null, events: [], pdfPath: '', signedPdfPath: '' })
    return this.prepare()
  },

  goIdCard() {
    wx.navigateTo({ url: '/pages/identity/idcard/idcard' })
  },

  /** 开户协议签署后回到开户页（它在 onShow 时重新读取还缺什么）；没有上一页时打开该申请。 */
  goOpenAccount() {
    const subjectId = this.data.subjectId
    wx.navigateBack({
      fail() {
        wx.redirectTo({ url: '/pages/account/open/open?id=' + subjectId })
      }
    })
  },

  /** ETC 自动扣款授权书签署后回到绑定页（它在 onShow 时重新读取，接着开通）；没有上一页时打开该绑定。 */
  goEtcBinding() {
    const subjectId = this.data.subjectId
    wx.navigateBack({
      fail() {
        wx.redirectTo({ url: '/pages/etc/bind/bind?id=' + subjectId })
      }
    })
  },

  goHome() {
    wx.reLaunch({ url: '/pages/index/index' })
  },

  fail(err) {
    if (err && err.code === 'SIGNATURE_IMAGE_INVALID') this.onClearSignature()
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})
