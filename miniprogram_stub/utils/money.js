/**
 * 金额：后端只收发整数“分”（amount_fen / balance_fen）。
 *
 * - parseYuan('12.34') → {ok: true, fen: 1234}：按字符串解析，不经过浮点数（0.1 + 0.2 之类的误差不会出现）；
 *   最多两位小数，不接受负数、空串、指数写法（1e3）、全角数字、千分位逗号等；超过接口上限
 *   （MAX_AMOUNT_FEN，与后端 AmountBody.amount_fen 的 maximum 一致）或为 0 也拒绝，
 *   失败时 {ok: false, code, message}；
 * - formatFen(123456) → '¥1,234.56'（负数 '-¥1.00'）；fenToYuan(123456) → '1234.56'（输入框用）。
 */

// 一笔转账最多 10^12 分（后端 services/accounts/funding.py 的 MAX_AMOUNT_FEN，OpenAPI 中 amount_fen 的 maximum）。
const MAX_AMOUNT_FEN = 1000000000000
const MAX_YUAN_DIGITS = 13 // 整数部分去掉前导 0 后超过这么多位，一定超过上限

const MESSAGES = {
  AMOUNT_REQUIRED: '请输入金额',
  AMOUNT_INVALID: '请输入正确的金额',
  AMOUNT_TOO_PRECISE: '金额最多保留两位小数',
  AMOUNT_NOT_POSITIVE: '金额须大于 0',
  AMOUNT_TOO_LARGE: '金额超出单笔上限'
}

function failure(code) {
  return { ok: false, code, message: MESSAGES[code], fen: null }
}

/**
 * 元（字符串）→ 整数分。opts.max：上限（分），默认 MAX_AMOUNT_FEN。
 * 接受：'100'、'0.1'、'12.34'、'12.'、'007'，首尾空白与前导 ¥ 会去掉。
 */
function parseYuan(text, opts) {
  const max = opts && Number.isSafeInteger(opts.max) ? Math.min(opts.max, MAX_AMOUNT_FEN) : MAX_AMOUNT_FEN
  if (text === null || text === undefined) return failure('AMOUNT_REQUIRED')
  if (typeof text === 'number') return failure('AMOUNT_INVALID') // 只接受输入框里的文字，不接受浮点数
  let s = String(text).trim()
  if (s.charAt(0) === '¥' || s.charAt(0) === '￥') s = s.slice(1).trim()
  if (s === '') return failure('AMOUNT_REQUIRED')
  if (s.charAt(0) === '-') return /^-\d+(\.\d*)?$/.test(s) ? failure('AMOUNT_NOT_POSITIVE') : failure('AMOUNT_INVALID')
  const m = /^(\d+)(?:\.(\d*))?$/.exec(s)
  if (!m) return failure('AMOUNT_INVALID')
  const intPart = m[1].replace(/^0+(?=\d)/, '')
  const fracPart = m[2] || ''
  if (fracPart.length > 2) return failure('AMOUNT_TOO_PRECISE')
  if (intPart.length > MAX_YUAN_DIGITS) return failure('AMOUNT_TOO_LARGE')
  // 两个不大于 10^13 的整数：Number 精确表示，没有舍入。
  const fen = Number(intPart) * 100 + Number((fracPart + '00').slice(0, 2))
  if (fen <= 0) return failure('AMOUNT_NOT_POSITIVE')
  if (fen > max) return failure('AMOUNT_TOO_LARGE')
  return { ok: true, code: null, message: '', fen }
}

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

function splitFen(fen) {
  if (!Number.isSafeInteger(fen)) throw new TypeError('fen must be an integer, got ' + JSON.stringify(fen))
  const abs = Math.abs(fen)
  return { sign: fen < 0 ? '-' : '', yuan: String(Math.floor(abs / 100)), cents: String(abs % 100).padStart(2, '0') }
}

/** 整数分 → '¥1,234.56'。 */
function formatFen(fen) {
  const p = splitFen(fen)
  return p.sign + '¥' + groupThousands(p.yuan) + '.' + p.cents
}

/** 整数分 → '1234.56'（不带符号与千分位）。 */
function fenToYuan(fen) {
  const p = splitFen(fen)
  return p.sign + p.yuan + '.' + p.cents
}

module.exports = { MAX_AMOUNT_FEN, MESSAGES, parseYuan, formatFen, fenToYuan }
