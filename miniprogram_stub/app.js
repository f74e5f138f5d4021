const config = require('./config')

App({
  globalData: {
    baseUrl: config.baseUrl,
    user: null
  },

  onLaunch() {
    // 登录态保存在本地存储（access_token / refresh_token），由 utils/api.js 统一管理。
  }
})
