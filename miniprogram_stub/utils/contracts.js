/**
 * 协议（电子合同）相关的小工具：模板名称、本机签署记录。
 *
 * 后端 GET /api/v1/me 暂不返回协议签署状态，首页“签署协议”步骤的完成情况取自本机记录
 * （微信本地存储按微信用户隔离）。
 */
const TITLES = {
  privacy_consent: '个人信息处理授权同意书',
  account_agreement: '个人银行电子账户服务协议',
  etc_autodebit: 'ETC通行费及车辆服务费用自动扣款授权书'
}

const SIGNED_KEY = 'signed_contracts'

function titleOf(template) {
  return TITLES[template] || '协议签署'
}

function recordKey(template, subjectId) {
  return subjectId ? template + ':' + subjectId : template
}

function signedRecords() {
  const all = wx.getStorageSync(SIGNED_KEY)
  return all && typeof all === 'object' ? all : {}
}

/** 本机记录的已签署协议 {id, contract_no, signed_at, signed_sha256}，没有则为 null。 */
function signedRecord(template, subjectId) {
  return signedRecords()[recordKey(template, subjectId)] || null
}

function markSigned(contract, subjectId) {
  if (!contract || contract.status !== 'signed') return
  const all = signedRecords()
  all[recordKey(contract.template, subjectId)] = {
    id: contract.id,
    contract_no: contract.contract_no,
    signed_at: contract.signed_at,
    signed_sha256: contract.signed_sha256
  }
  wx.setStorageSync(SIGNED_KEY, all)
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

module.exports = { TITLES, titleOf, signedRecord, markSigned, formatTime }
