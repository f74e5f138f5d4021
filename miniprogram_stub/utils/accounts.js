/**
 * 电子账户相关的小工具：账户类别与状态的文字、开户步骤、把后端的账户 / 流水变成页面直接绑定的数据
 * （WXML 里不能调用函数，金额等先在这里格式化好）。
 */
const money = require('./money')
const contracts = require('./contracts')

const CLASSES = [
  { value: 'II', label: 'Ⅱ类户', desc: '需绑定本人一类借记卡或信用卡；日累计支出 1 万元、年累计 20 万元（与绑定卡之间的转入转出不占额度）' },
  { value: 'III', label: 'Ⅲ类户', desc: '小额支付；余额不超过 2000 元，日累计支出 2000 元、年累计 5 万元' }
]

const CLASS_LABELS = { II: 'Ⅱ类户', III: 'Ⅲ类户' }

const APPLICATION_STATUS = {
  draft: '资料填写中',
  identity_verified: '身份已核验',
  signed: '协议已签署',
  opened: '已开户',
  rejected: '未通过',
  expired: '已过期'
}

const ACCOUNT_STATUS = { active: '正常', restricted: '受限', closing: '销户处理中', closed: '已销户' }

/** 账户限制（GET /api/v1/accounts/{id} 的 restrictions[].code）。 */
const RESTRICTIONS = {
  LOSS_REPORTED: '已挂失',
  ID_EXPIRED: '身份证件已过期',
  FRAUD_FREEZE: '银行风险冻结',
  JUDICIAL_FREEZE: '司法冻结'
}

/**
 * 账户受限时每个账户页顶部的提示（没有限制时为空串）：挂失中、被冻结（司法冻结部分金额时写出金额）。
 */
function restrictionBanner(a) {
  const list = (a && Array.isArray(a.restrictions)) ? a.restrictions : []
  if (!list.length) return ''
  const parts = list.map((r) => {
    const text = RESTRICTIONS[r.code] || r.code
    return Number.isSafeInteger(r.held_fen) ? text + ' ' + money.formatFen(r.held_fen) : text
  })
  return '账户' + parts.join('、') + '：暂不能转出资金，转入不受影响'
}

const ENTRY_KINDS = {
  top_up: '充值',
  withdrawal: '提现',
  withdrawal_reversal: '提现退回',
  // 合作方扣款（按类别记账）与其退款（按原扣款的类别）
  toll: '通行费',
  parking: '停车费',
  fuel: '加油',
  carwash: '洗车',
  toll_refund: '通行费退回',
  parking_refund: '停车费退回',
  fuel_refund: '加油退回',
  carwash_refund: '洗车退回'
}

const MILESTONES = [
  { key: 'identity_verified', title: '身份核验完成' },
  { key: 'signed', title: '开户协议签署' },
  { key: 'opened', title: '账户开立' },
  { key: 'rejected', title: '申请未通过' },
  { key: 'expired', title: '申请过期' }
]

/** 开户需要的步骤，按后端 missing 的顺序（phone, id_card, face, bank_card, agreement）。 */
const STEPS = [
  { key: 'phone', title: '绑定手机号', url: '/pages/login/login' },
  { key: 'id_card', title: '身份证验证', url: '/pages/identity/idcard/idcard' },
  { key: 'face', title: '人脸核验', url: '/pages/identity/face/face' },
  { key: 'bank_card', title: '同名银行卡验证', url: '/pages/identity/bankcard/bankcard' },
  { key: 'agreement', title: '签署开户协议', url: '' }
]

function agreementUrl(applicationId) {
  return '/pages/contract/contract?template=account_agreement&subject_id=' + encodeURIComponent(applicationId)
}

/**
 * 申请的各步骤 {key, title, done, current, url, note}：missing 里的未完成（第一个是 current），其余已完成；
 * 申请已结束时没有链接。
 */
function buildSteps(application) {
  const missing = (application && Array.isArray(application.missing)) ? application.missing : []
  const open = !!application && ['draft', 'identity_verified', 'signed'].indexOf(application.status) >= 0
  return STEPS.map((s) => {
    const done = !!application && missing.indexOf(s.key) < 0
    const url = s.key === 'agreement' ? (application ? agreementUrl(application.id) : '') : s.url
    return {
      key: s.key,
      title: s.title,
      done,
      current: open && missing.length > 0 && missing[0] === s.key,
      url: open && !done ? url : '',
      note: s.key === 'agreement' ? contracts.titleOf('account_agreement') : ''
    }
  })
}

function milestoneList(application) {
  const stamps = (application && application.milestones) || {}
  return MILESTONES.filter((m) => stamps[m.key]).map((m) => ({ key: m.key, title: m.title, at: contracts.formatTime(stamps[m.key]) }))
}

/** 后端的 AccountOut → 页面数据（金额带 ¥ 与千分位）。 */
function viewAccount(a) {
  if (!a) return null
  const l = a.limits || {}
  const fmt = (v) => (Number.isSafeInteger(v) ? money.formatFen(v) : '')
  return {
    id: a.id,
    number: a.number_masked,
    accountClass: a.account_class,
    classLabel: CLASS_LABELS[a.account_class] || a.account_class,
    status: a.status,
    statusText: ACCOUNT_STATUS[a.status] || a.status,
    active: a.status === 'active',
    closed: a.status === 'closed' || a.status === 'closing',
    closedAt: a.closed_at ? contracts.formatTime(a.closed_at) : '',
    banner: restrictionBanner(a),
    lossReported: (Array.isArray(a.restrictions) ? a.restrictions : []).some((r) => r.code === 'LOSS_REPORTED'),
    idExpired: (Array.isArray(a.restrictions) ? a.restrictions : []).some((r) => r.code === 'ID_EXPIRED'),
    balanceFen: a.balance_fen,
    balance: fmt(a.balance_fen),
    pendingIn: a.pending_in_fen > 0 ? fmt(a.pending_in_fen) : '',
    boundCard: a.bound_card_masked,
    openedAt: contracts.formatTime(a.opened_at),
    limits: {
      daily: fmt(l.daily_outflow_fen),
      dailyUsed: fmt(l.daily_outflow_used_fen),
      dailyRemaining: fmt(l.daily_outflow_remaining_fen),
      yearly: fmt(l.yearly_outflow_fen),
      yearlyUsed: fmt(l.yearly_outflow_used_fen),
      yearlyRemaining: fmt(l.yearly_outflow_remaining_fen),
      cap: l.balance_cap_fen === null || l.balance_cap_fen === undefined ? '' : fmt(l.balance_cap_fen),
      room: l.balance_room_fen === null || l.balance_room_fen === undefined ? '' : fmt(l.balance_room_fen)
    },
    roomFen: Number.isSafeInteger(l.balance_room_fen) ? l.balance_room_fen : null
  }
}

/** 后端的 EntryOut → 页面数据。 */
function viewEntry(e) {
  const credit = e.direction === 'credit'
  return {
    id: e.id,
    kind: e.kind,
    title: ENTRY_KINDS[e.kind] || e.kind,
    credit,
    amount: (credit ? '+' : '-') + money.formatFen(e.amount_fen),
    balanceAfter: money.formatFen(e.balance_after_fen),
    counterparty: e.counterparty || '',
    at: contracts.formatTime(e.booked_at)
  }
}

/** 身份证过期后的更新：身份证页（renew=1）→ 人脸核验页 → 回到账户页（accountId 可为空）。 */
function renewalUrl(page, accountId) {
  return '/pages/identity/' + page + '/' + page + '?renew=1' + (accountId ? '&account_id=' + encodeURIComponent(accountId) : '')
}

/** 页面参数里的账户 / 申请 id：正整数，否则 null。 */
function parseId(value) {
  if (value === undefined || value === null) return null
  let text = String(value)
  try {
    text = decodeURIComponent(text)
  } catch (e) {
    // 原样
  }
  text = text.trim()
  return /^[1-9]\d{0,15}$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : null
}

module.exports = {
  CLASSES, CLASS_LABELS, APPLICATION_STATUS, ACCOUNT_STATUS, RESTRICTIONS, restrictionBanner, ENTRY_KINDS, STEPS,
  agreementUrl, buildSteps, milestoneList, viewAccount, viewEntry, parseId, renewalUrl
}
