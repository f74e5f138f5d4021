/**
 * 协议（电子合同）相关的小工具：模板名称、已签署协议查询、时间格式化。
 *
 * 首页“签署协议”步骤的完成情况以服务端为准：GET /api/v1/contracts?template=…&status=signed
 * （按创建时间倒序），换设备、清除本地缓存后重新登录也能看到。
 */
const api = require('./api')

const TITLES = {
  privacy_consent: '个人信息处理授权同意书',
  account_agreement: '个人银行电子账户服务协议',
  etc_autodebit: 'ETC通行费及车辆服务费用自动扣款授权书'
}

function titleOf(template) {
  return TITLES[template] || '协议签署'
}

/**
 * 当前用户该模板最新的已签署协议 {id, contract_no, signed_at, signed_sha256, …}，没有则为 null。
 * 请求失败时以 ApiError 拒绝（由调用方决定如何展示）。
 */
function latestSigned(template) {
  return api.request({
    url: '/api/v1/contracts',
    data: { template, status: 'signed' }
  }).then((body) => {
    const list = (body && Array.isArray(body.contracts)) ? body.contracts : []
    return list.find((c) => c && c.status === 'signed' && c.template === template) || null
  })
}

function pad(n) {
  return n < 10 ? '0' + n : String(n)
}

/** ISO 时间 → 本地 “YYYY-MM-DD HH:mm:ss”；无法解析时原样返回。 */
function formatTime(iso) {
  if (!iso) return ''
  const d = new Date(iso)
  if (isNaN(d.getTime())) return String(iso)
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
    pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds())
}

module.exports = { TITLES, titleOf, latestSigned, formatTime }
