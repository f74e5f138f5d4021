const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const accounts = require('../../../utils/accounts')
const money = require('../../../utils/money')

/** 北京时间的当月，YYYY-MM。 */
function chinaMonth(now) {
  const at = new Date((now || Date.now()) + 8 * 3600 * 1000)
  return at.toISOString().slice(0, 7)
}

/** 对账单 CSV（record,booked_at,kind,direction,amount_fen,…）→ {opening, closing, entries}，金额为分（整数）。 */
function parseCsv(text) {
  const lines = String(text || '').replace(/^\uFEFF/, '').split('\n').filter((l) => l.length)
  const head = (lines.shift() || '').split(',')
  const rows = lines.map((line) => {
    // 对方名称里可能有逗号（带引号）：按 RFC 4180 拆分
    const cells = []
    let cur = ''
    let quoted = false
    for (let i = 0; i < line.length; i++) {
      const ch = line[i]
      if (quoted && ch === '"' && line[i + 1] === '"') { cur += '"'; i++ } else if (ch === '"') quoted = !quoted
      else if (ch === ',' && !quoted) { cells.push(cur); cur = '' } else cur += ch
    }
    cells.push(cur)
    const row = {}
    head.forEach((name, i) => { row[name] = cells[i] === undefined ? '' : cells[i] })
    return row
  })
  const opening = rows.find((r) => r.record === 'opening')
  const closing = rows.find((r) => r.record === 'closing')
  return {
    openingFen: opening ? parseInt(opening.balance_after_fen, 10) : 0,
    closingFen: closing ? parseInt(closing.balance_after_fen, 10) : 0,
    entries: rows.filter((r) => r.record === 'entry')
  }
}

Page({
  data: {
    accountId: null,
    month: '',
    endMonth: '',
    summary: null,
    entries: [],
    downloading: '',
    error: null
  },

  /** options: {id: 账户 id, month?: YYYY-MM}。 */
  onLoad(options) {
    const accountId = accounts.parseId((options || {}).id)
    const endMonth = chinaMonth()
    this.setData({ accountId, endMonth, month: (options && options.month) || endMonth })
    if (!accountId) this.fail(new api.ApiError({ status: 404, code: 'ACCOUNT_NOT_FOUND' }))
    return Promise.resolve(null)
  },

  /** <picker mode="date" fields="month">：value 为 YYYY-MM。 */
  onMonthChange(e) {
    const value = String((e && e.detail && e.detail.value) || '').slice(0, 7)
    this.setData({ month: value, summary: null, entries: [], error: null })
  },

  url(ext) {
    return '/api/v1/accounts/' + encodeURIComponent(this.data.accountId) + '/statements/' +
      encodeURIComponent(this.data.month) + '.' + ext
  },

  /** 下载银行电子签章的 PDF 对账单并打开；resolve {filePath, sha256}，失败 resolve null。 */
  onDownloadPdf() {
    if (!this.data.accountId || this.data.downloading) return Promise.resolve(null)
    this.setData({ downloading: 'pdf', error: null })
    return api.download({ url: this.url('pdf') }).then((res) => new Promise((resolve, reject) => {
      wx.openDocument({
        filePath: res.tempFilePath,
        fileType: 'pdf',
        showMenu: true,
        success: () => resolve({ filePath: res.tempFilePath, sha256: api.headerValue(res.header, 'X-Content-SHA256') || '' }),
        fail: () => reject(new api.ApiError({ status: 0, code: 'DOCUMENT_OPEN_FAILED', message: '文件打开失败，请重试' }))
      })
    })).then((out) => {
      this.setData({ downloading: '' })
      return out
    }).catch((err) => {
      this.setData({ downloading: '' })
      return this.fail(err)
    })
  },

  /** 下载 CSV 对账单，读出当月的期初、期末余额与每笔交易显示在页面上；resolve 解析结果，失败 resolve null。 */
  onDownloadCsv() {
    if (!this.data.accountId || this.data.downloading) return Promise.resolve(null)
    this.setData({ downloading: 'csv', error: null })
    return api.download({ url: this.url('csv') }).then((res) => {
      const text = wx.getFileSystemManager().readFileSync(res.tempFilePath, 'utf8')
      const parsed = parseCsv(text)
      this.setData({
        downloading: '',
        summary: { opening: money.formatFen(parsed.openingFen), closing: money.formatFen(parsed.closingFen), count: parsed.entries.length },
        entries: parsed.entries.map((r, i) => accounts.viewEntry({
          id: i + 1, kind: r.kind, direction: r.direction, amount_fen: parseInt(r.amount_fen, 10),
          balance_after_fen: parseInt(r.balance_after_fen, 10), counterparty: r.counterparty, booked_at: r.booked_at
        }))
      })
      return Object.assign({ filePath: res.tempFilePath }, parsed)
    }).catch((err) => {
      this.setData({ downloading: '' })
      return this.fail(err)
    })
  },

  fail(err) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})

module.exports = { parseCsv, chinaMonth }
