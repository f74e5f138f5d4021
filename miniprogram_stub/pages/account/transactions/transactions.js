const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const accounts = require('../../../utils/accounts')

Page({
  data: {
    accountId: null,
    pageSize: 20,
    entries: [],
    nextCursor: null,
    loading: false,
    loaded: false,
    error: null
  },

  /** options: {id: 账户 id}。 */
  onLoad(options) {
    const accountId = accounts.parseId((options || {}).id)
    this.setData({ accountId })
    if (!accountId) return Promise.resolve(this.fail(new api.ApiError({ status: 404, code: 'ACCOUNT_NOT_FOUND' })))
    return this.reload()
  },

  onPullDownRefresh() {
    return this.reload().then((entries) => {
      wx.stopPullDownRefresh()
      return entries
    })
  },

  onReachBottom() {
    return this.onLoadMore()
  },

  /** 从第一页重新读取。 */
  reload() {
    this.setData({ entries: [], nextCursor: null, loaded: false })
    return this.loadPage(null)
  },

  /** “加载更多”：用上一页的 next_cursor 读下一页；没有下一页时什么也不做。 */
  onLoadMore() {
    if (!this.data.nextCursor || this.data.loading) return Promise.resolve(null)
    return this.loadPage(this.data.nextCursor)
  },

  /** GET /api/v1/accounts/{id}/transactions?limit=&cursor=：最新的在前。 */
  loadPage(cursor) {
    if (this.data.loading) return Promise.resolve(null)
    const data = { limit: this.data.pageSize }
    if (cursor) data.cursor = cursor
    this.setData({ loading: true, error: null })
    return api.request({
      url: '/api/v1/accounts/' + encodeURIComponent(this.data.accountId) + '/transactions',
      data
    }).then((body) => {
      const seen = {}
      this.data.entries.forEach((e) => { seen[e.id] = true })
      const fresh = ((body && body.entries) || []).filter((e) => !seen[e.id]).map(accounts.viewEntry)
      this.setData({
        loading: false,
        loaded: true,
        entries: this.data.entries.concat(fresh),
        nextCursor: (body && body.next_cursor) || null
      })
      return fresh
    }).catch((err) => {
      this.setData({ loading: false })
      return this.fail(err)
    })
  },

  fail(err) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  }
})
