// 订阅消息：WeChat 只把用户点“允许”过的模板消息送达（一次性订阅：允许一次，送达一条；否则 43101）。
// wx.requestSubscribeMessage 只能在点击时调用（同步部分），一次最多 3 个模板，所以在用户点按钮的那一刻请求：
//   提交开户 → 开户成功、证件到期、账户挂失；开通自动扣款 → 扣款成功、欠费提醒；销户 → 销户成功；
//   挂失 → 账户挂失（开户时的一次已用过时）；更新身份证 → 证件到期（新证件到期前一个月的提醒）。
// 模板 id 与后端的 *_TEMPLATE_ID 设置一致（沙箱的模板，见 docs/sandbox.md）；上线时换成公众平台的模板 id。
const TEMPLATES = {
  accountOpened: 'fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE',
  debit: 'OyU4C0AHaaok3lDZsIiyqB5mApgyNRFSCeGjwkNclY0',
  arrears: 'o5P84JR1UN1RUg2Pvklo4Cnv6R8CLDwYtrwvLINqKgk',
  lossReported: 'MoGCd-tAGbTaoi68ckIliO6I2qfiUzvbhIhJTThW1Qw',
  idExpiry: 'utQ-DAmesEIiAWoMh7FNh0f-S5d1A1vfIRG_PBQmJXU',
  accountClosed: 'G59kAsodnJGDk1l4UdWAFkINByntvi08ZVry8IYa0Yc'
}

const MOMENTS = {
  opening: [TEMPLATES.accountOpened, TEMPLATES.idExpiry, TEMPLATES.lossReported],
  binding: [TEMPLATES.debit, TEMPLATES.arrears],
  closing: [TEMPLATES.accountClosed],
  lossReport: [TEMPLATES.lossReported],
  renewal: [TEMPLATES.idExpiry]
}

/**
 * 在点击处理函数的同步部分调用：请求该时刻的订阅。返回的 Promise 总是 resolve（用户拒绝或不支持也不妨碍办理业务），
 * 值为用户允许的模板 id 列表。
 */
function ask(moment) {
  const tmplIds = MOMENTS[moment] || []
  if (!tmplIds.length || typeof wx.requestSubscribeMessage !== 'function') return Promise.resolve([])
  return new Promise((resolve) => {
    wx.requestSubscribeMessage({
      tmplIds,
      success: (res) => resolve(tmplIds.filter((id) => res[id] === 'accept')),
      fail: () => resolve([])
    })
  })
}

module.exports = { TEMPLATES, MOMENTS, ask }
