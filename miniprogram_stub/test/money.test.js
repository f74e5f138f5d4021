/**
 * utils/money.js: yuan text → integer fen by string parsing (never floats), fen → '¥1,234.56'. No backend needed.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const money = require('../utils/money')

const fen = (text, opts) => {
  const r = money.parseYuan(text, opts)
  assert.equal(r.ok, true, JSON.stringify(text) + ' → ' + JSON.stringify(r))
  assert.ok(Number.isSafeInteger(r.fen), 'an integer number of fen')
  return r.fen
}
const refused = (text, opts) => {
  const r = money.parseYuan(text, opts)
  assert.equal(r.ok, false, JSON.stringify(text) + ' should be refused, got ' + JSON.stringify(r))
  assert.equal(r.fen, null)
  assert.ok(r.message, 'a message for the user')
  assert.equal(r.message, money.MESSAGES[r.code])
  return r.code
}

test('money: yuan strings parse to integer fen', () => {
  assert.equal(fen('100'), 10000)
  assert.equal(fen('0.1'), 10)
  assert.equal(fen('0.01'), 1)
  assert.equal(fen('12.34'), 1234)
  assert.equal(fen('12.3'), 1230)
  assert.equal(fen('12.'), 1200, 'a trailing point while typing')
  assert.equal(fen('007'), 700, 'leading zeros')
  assert.equal(fen('  5.50 '), 550, 'surrounding spaces')
  assert.equal(fen('¥20'), 2000)
  assert.equal(fen('￥20'), 2000)
  assert.equal(fen('1.10'), 110)
})

test('money: no float rounding anywhere (values that floats get wrong)', () => {
  // 0.29 * 100 = 28.999999999999996, 1.15 * 100 = 114.99999999999999, 4.35 * 100 = 434.99999999999994 in floats.
  assert.equal(fen('0.29'), 29)
  assert.equal(fen('1.15'), 115)
  assert.equal(fen('4.35'), 435)
  assert.equal(fen('8.7'), 870)
  assert.equal(fen('9999999999.99'), 999999999999)
  for (let cents = 0; cents < 100; cents++) {
    const text = '123.' + String(cents).padStart(2, '0')
    assert.equal(fen(text), 12300 + cents, text)
  }
})

test('money: malformed, negative, empty, exponent and too precise amounts are refused', () => {
  assert.equal(refused(''), 'AMOUNT_REQUIRED')
  assert.equal(refused('   '), 'AMOUNT_REQUIRED')
  assert.equal(refused(null), 'AMOUNT_REQUIRED')
  assert.equal(refused(undefined), 'AMOUNT_REQUIRED')
  assert.equal(refused('1.234'), 'AMOUNT_TOO_PRECISE')
  assert.equal(refused('0.001'), 'AMOUNT_TOO_PRECISE')
  assert.equal(refused('-1'), 'AMOUNT_NOT_POSITIVE')
  assert.equal(refused('-0.5'), 'AMOUNT_NOT_POSITIVE')
  assert.equal(refused('0'), 'AMOUNT_NOT_POSITIVE')
  assert.equal(refused('0.00'), 'AMOUNT_NOT_POSITIVE')
  for (const bad of ['abc', '1e3', '1E3', '1e-2', '0x10', '+5', '1,000', '1 000', '.5', '1..2', '1.2.3', 'Infinity', 'NaN',
    '１００', '12元', '--1', '-', '.', '¥', '1.-2', '٣']) {
    const code = refused(bad)
    assert.ok(['AMOUNT_INVALID', 'AMOUNT_REQUIRED'].includes(code), bad + ' → ' + code)
  }
  assert.equal(refused(12.34), 'AMOUNT_INVALID', 'a float is never parsed')
  assert.equal(refused(100), 'AMOUNT_INVALID', 'only text from the input is parsed')
})

test('money: amounts over the API bound (10^12 fen) or a given max are refused', () => {
  assert.equal(money.MAX_AMOUNT_FEN, 1e12)
  assert.equal(fen('10000000000'), 1e12, 'exactly the bound')
  assert.equal(refused('10000000000.01'), 'AMOUNT_TOO_LARGE')
  assert.equal(refused('10000000001'), 'AMOUNT_TOO_LARGE')
  assert.equal(refused('99999999999999999999999'), 'AMOUNT_TOO_LARGE', 'no precision loss on long inputs')
  assert.equal(fen('0000000000000000000001'), 100, 'leading zeros do not count as size')
  assert.equal(fen('20', { max: 2000 }), 2000)
  assert.equal(refused('20.01', { max: 2000 }), 'AMOUNT_TOO_LARGE')
  assert.equal(fen('5', { max: 1e15 }), 500, 'a max above the API bound is capped at it')
  assert.equal(refused('10000000000.01', { max: 1e15 }), 'AMOUNT_TOO_LARGE')
})

test('money: fen format as ¥ with thousands separators and two decimals', () => {
  assert.equal(money.formatFen(0), '¥0.00')
  assert.equal(money.formatFen(1), '¥0.01')
  assert.equal(money.formatFen(10), '¥0.10')
  assert.equal(money.formatFen(10000), '¥100.00')
  assert.equal(money.formatFen(123456), '¥1,234.56')
  assert.equal(money.formatFen(100000000), '¥1,000,000.00')
  assert.equal(money.formatFen(1e12), '¥10,000,000,000.00')
  assert.equal(money.formatFen(-100), '-¥1.00')
  assert.equal(money.formatFen(-123456), '-¥1,234.56')
  assert.equal(money.fenToYuan(123456), '1234.56')
  assert.equal(money.fenToYuan(5), '0.05')
  assert.throws(() => money.formatFen(1.5), TypeError)
  assert.throws(() => money.formatFen('100'), TypeError)
  assert.throws(() => money.formatFen(null), TypeError)
})

test('money: parse and format round-trip', () => {
  for (const f of [1, 9, 10, 99, 100, 101, 1234, 99999, 100000, 123456789, 999999999999, 1e12]) {
    assert.equal(fen(money.fenToYuan(f)), f)
    assert.equal(fen(money.formatFen(f).replace(/,/g, '')), f)
  }
})
