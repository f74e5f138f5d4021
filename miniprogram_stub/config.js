// 后端地址。开发者工具中请在“详情 → 本地设置”勾选“不校验合法域名”以访问本机沙箱。
// Node 测试会在加载页面前把 baseUrl 改成 BASE_URL 环境变量的值。
module.exports = { baseUrl: 'http://127.0.0.1:8000' }
