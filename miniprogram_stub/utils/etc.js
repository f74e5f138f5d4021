/**
 * 车辆与 ETC 的小工具：车牌规范化与校验、车牌颜色、绑定与代扣记录的文字，以及页面直接绑定的视图数据
 * （WXML 里不能调用函数，金额、时间先在这里格式化好）。
 *
 * - normalisePlate(' 粤b d12345 ') → '粤BD12345'：去掉空白与间隔点（· • ・ ‧），小写 ASCII 字母转大写；
 * - PLATE_PATTERN 与后端 core/validators.py 的 PLATE_RE（OpenAPI 中 VehicleBody.plate_number 的 pattern）一致：
 *   GA 36-2018，7 位普通车牌（末位可为 挂学警港澳领）、8 位新能源车牌（小型车 D|F + 字母或数字 + 4 位数字，
 *   大型车 5 位数字 + D|F）、使馆车牌 使 + 6 位数字；不含字母 I、O；
 * - suggestColor(plate)：8 位车牌按其形状为 渐变绿（小型新能源）或 黄绿双拼（大型新能源），
 *   学 / 挂 为黄牌，警 为白牌，使 / 领 / 港 / 澳 为黑牌，其余为蓝牌；
 * - colorFits(plate, color) 与后端 plate_color_fits 一致：8 位车牌只能是与其形状相符的绿色，其余车牌不能是绿色；
 * - CARD_PATTERN：ETC 用户卡号为 20 位数字（后端 ETC_CARD_RE）。
 */
const money = require('./money')
const contracts = require('./contracts')
const errors = require('./errors')

const PROVINCES = '京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼'
const LETTERS = 'A-HJ-NP-Z' // 车牌字母不含 I、O（易与 1、0 混淆）
const PLATE_PATTERN = new RegExp('^(?:[' + PROVINCES + '][' + LETTERS + '](?:[' + LETTERS + '0-9]{4}[' + LETTERS +
  '0-9挂学警港澳领]|[DF][' + LETTERS + '0-9][0-9]{4}|[0-9]{5}[DF])|使[0-9]{6})$')
const CARD_PATTERN = /^[0-9]{20}$/
const CARD_LENGTH = 20

const COLORS = [
  { value: 'blue', label: '蓝' },
  { value: 'yellow', label: '黄' },
  { value: 'black', label: '黑' },
  { value: 'white', label: '白' },
  { value: 'gradient_green', label: '渐变绿' },
  { value: 'yellow_green', label: '黄绿双拼' }
]
const COLOR_LABELS = COLORS.reduce((out, c) => {
  out[c.value] = c.label
  return out
}, {})
const NEW_ENERGY_SMALL = 'gradient_green'
const NEW_ENERGY_LARGE = 'yellow_green'

const CATEGORY_LABELS = { toll: '通行费', parking: '停车费', fuel: '加油', carwash: '洗车' }
// refused: held or blocked by the bank's risk control, nothing taken and nothing owed
const DEBIT_STATUS = { succeeded: '已扣款', arrears: '欠费', settled: '已补缴', refused: '未扣款（银行风控拦截）' }
const BINDING_STATUS = { pending: '待开通', active: '已开通', suspended: '已暂停', unbound: '已解绑' }

/** 用户输入的车牌 → 接口要的写法：去掉空白和间隔点，小写 ASCII 字母转大写（汉字不变）。 */
function normalisePlate(text) {
  return String(text === undefined || text === null ? '' : text)
    .replace(/[\s·•・‧]+/g, '')
    .replace(/[a-z]/g, (c) => c.toUpperCase())
}

function plateOk(plate) {
  return typeof plate === 'string' && PLATE_PATTERN.test(plate)
}

function isLargeNewEnergy(plate) {
  return plate.length === 8 && /[DF]$/.test(plate) && /^[0-9]{5}$/.test(plate.slice(2, 7))
}

/** 车牌的默认颜色（用户没有自己选时）。 */
function suggestColor(plate) {
  plate = String(plate || '')
  if (plate.length === 8) return isLargeNewEnergy(plate) ? NEW_ENERGY_LARGE : NEW_ENERGY_SMALL
  if (plate.charAt(0) === '使') return 'black'
  const last = plate.length === 7 ? plate.charAt(6) : ''
  if (last === '学' || last === '挂') return 'yellow'
  if (last === '警') return 'white'
  if (last === '领' || last === '港' || last === '澳') return 'black'
  return 'blue'
}

/** 颜色与车牌是否相符（后端 plate_color_fits）：新能源（8 位）是相应的绿色，其余不是绿色。 */
function colorFits(plate, color) {
  plate = String(plate || '')
  if (plate.length === 8) return color === (isLargeNewEnergy(plate) ? NEW_ENERGY_LARGE : NEW_ENERGY_SMALL)
  return color !== NEW_ENERGY_SMALL && color !== NEW_ENERGY_LARGE
}

/** 本地检查车牌与颜色；返回错误码（PLATE_REQUIRED / PLATE_INVALID / PLATE_COLOR_MISMATCH）或 null。 */
function plateProblem(plate, color) {
  if (!plate) return 'PLATE_REQUIRED'
  if (!plateOk(plate)) return 'PLATE_INVALID'
  if (!COLOR_LABELS[color] || !colorFits(plate, color)) return 'PLATE_COLOR_MISMATCH'
  return null
}

/** ETC 卡号输入：只留数字（用户可能按 4 位一组加了空格）。 */
function normaliseCard(text) {
  return String(text === undefined || text === null ? '' : text).replace(/\D+/g, '')
}

function cardOk(card) {
  return typeof card === 'string' && CARD_PATTERN.test(card)
}

/** 后端的 VehicleOut → 页面数据；bound：该车已有未解绑的 ETC 绑定（没有为 null）。 */
function viewVehicle(v, binding) {
  return {
    id: v.id,
    plate: v.plate_number,
    color: v.plate_color,
    colorLabel: COLOR_LABELS[v.plate_color] || v.plate_color,
    newEnergy: v.plate_number.length === 8,
    bindingId: binding ? binding.id : null,
    bindingText: binding ? 'ETC ' + (BINDING_STATUS[binding.status] || binding.status) : ''
  }
}

/** 后端的 BindingOut → 页面数据。 */
function viewBinding(b) {
  if (!b) return null
  const arrearsFen = Number.isSafeInteger(b.arrears_fen) ? b.arrears_fen : 0
  return {
    id: b.id,
    status: b.status,
    statusText: BINDING_STATUS[b.status] || b.status,
    pending: b.status === 'pending',
    active: b.status === 'active',
    suspended: b.status === 'suspended',
    unbound: b.status === 'unbound',
    vehicleId: b.vehicle_id,
    accountId: b.account_id,
    card: b.card_number_masked,
    plate: b.plate_number,
    color: b.plate_color,
    colorLabel: COLOR_LABELS[b.plate_color] || b.plate_color,
    arrearsFen,
    arrears: money.formatFen(arrearsFen),
    hasArrears: arrearsFen > 0,
    arrearsNote: arrearsFen > 0 ? '欠费 ' + money.formatFen(arrearsFen) : '',
    contractId: b.authorisation_contract_id || null,
    createdAt: contracts.formatTime(b.created_at),
    expiresAt: contracts.formatTime(b.expires_at),
    activatedAt: contracts.formatTime(b.activated_at),
    suspendedAt: contracts.formatTime(b.suspended_at),
    unboundAt: contracts.formatTime(b.unbound_at)
  }
}

/** 后端的 BindingDebitOut（合作方的扣款）→ 页面数据。 */
function viewDebit(d) {
  return {
    key: d.out_trade_no,
    outTradeNo: d.out_trade_no,
    category: d.category,
    categoryLabel: CATEGORY_LABELS[d.category] || d.category,
    status: d.status,
    statusText: DEBIT_STATUS[d.status] || d.status,
    arrears: d.status === 'arrears',
    settled: d.status === 'settled',
    amount: money.formatFen(d.amount_fen),
    refunded: d.refunded_fen > 0 ? money.formatFen(d.refunded_fen) : '',
    merchant: d.merchant || '',
    at: contracts.formatTime(d.occurred_at),
    refusal: d.refusal_code ? errors.describe({ code: d.refusal_code, message: '' }) : ''
  }
}

module.exports = {
  PROVINCES, PLATE_PATTERN, CARD_PATTERN, CARD_LENGTH, COLORS, COLOR_LABELS, CATEGORY_LABELS, DEBIT_STATUS, BINDING_STATUS,
  normalisePlate, plateOk, suggestColor, colorFits, plateProblem, normaliseCard, cardOk,
  viewVehicle, viewBinding, viewDebit
}
