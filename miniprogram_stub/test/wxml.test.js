/**
 * The strict WXML renderer (test/wxml.js) on its own, and every page of app.json rendered with its initial
 * data (no backend needed). The journey renders the pages again with live data.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const wxml = require('./wxml')
const shim = require('./wx-shim')

const noop = () => {}
const render = (src, data, methods) => wxml.renderString(src, data, { methods: methods || {}, file: 'test/fixtures/inline.wxml' })

test('wxml: renders text, attributes and {{ }} expressions', () => {
  const out = render(
    '<view class="card {{ok ? \'ok\' : \'bad\'}}" data-user-id="{{user.id}}">\n' +
    '  <text>{{user.name}} · {{n + 1}} / {{list.length}} &lt;{{list[1]}}&gt;</text>\n' +
    '  <view>{{user.phone || \'未绑定\'}}</view>\n' +
    '  <view hidden="{{true}}">secret</view>\n' +
    '</view>',
    { ok: true, user: { id: 7, name: '张*', phone: null }, n: 1, list: ['a', 'b'] }
  )
  assert.equal(out.text, '张* · 2 / 2 <b>\n未绑定')
  const [card] = out.select('view.card')
  assert.equal(card.attrs.class, 'card ok')
  assert.equal(card.dataset.userId, 7, 'a lone {{ }} keeps its type; data-* in dataset, camel-cased')
  assert.equal(out.select('view')[2].hidden, true, 'hidden elements are in the tree, not in the text')
})

test('wxml: a misspelt binding throws with file:line:col', () => {
  assert.throws(() => render('<view>\n  <text>{{user.name}}</text> {{usr.name}}\n</view>', { user: { name: 'x' } }),
    (err) => err instanceof wxml.WxmlError && /^test\/fixtures\/inline\.wxml:2:30: unknown binding "usr" in \{\{usr\.name\}\}/.test(err.message) && /\[user\]/.test(err.message))
  // Found at render time too (a nested field), located at its {{.
  assert.throws(() => render('<view>a\n b {{user.nmae}}</view>', { user: { name: 'x' } }), /inline\.wxml:2:4: no key "nmae"/)
})

test('wxml: a missing nested field throws; null values and reads through null render empty', () => {
  assert.throws(() => render('<view>{{result.bank_name}}</view>', { result: { card_number: '6222' } }),
    /no key "bank_name" in \{\{result\.bank_name\}\} \(result has \["card_number"\]\)/)
  assert.throws(() => render('<view>{{a.b.c}}</view>', { a: { b: {} } }), /no key "c"/)
  assert.equal(render('<view>[{{a.b}}]</view>', { a: { b: null } }).text, '[]', 'a key whose value is null is fine')
  assert.equal(render('<view>[{{a.b.c}}]</view>', { a: { b: null } }).text, '[]', 'member access on null renders empty')
  assert.equal(render('<view>[{{a.b}}]</view>', { a: null }).text, '[]')
  assert.throws(() => render('<view>{{list[2]}}</view>', { list: [1, 2] }), /index 2 out of range/)
  assert.throws(() => render('<view>{{n.x}}</view>', { n: 3 }), /reading "x" of a number/)
  assert.throws(() => render('<view>{{user}}</view>', { user: { id: 1 } }), /renders a object as text/)
  assert.throws(() => render('<view>{{fmt(x)}}</view>', { fmt: 1, x: 2 }), /function calls are not allowed/)
})

test('wxml: event attributes must name a method of the page', () => {
  const methods = { onTap: noop, onInput: noop }
  assert.doesNotThrow(() => render('<button bindtap="onTap" catchtap="onTap" bind:tap="onTap" capture-bind:tap="onTap" mut-bind:tap="onTap" bindinput="onInput">x</button>', {}, methods))
  for (const attr of ['bindtap', 'catchtap', 'bind:tap', 'catch:tap', 'bindinput', 'bindchange', 'bindsubmit', 'bindgetphonenumber', 'capture-catch:touchstart']) {
    assert.throws(() => render('<button ' + attr + '="onTpa">x</button>', {}, methods), new RegExp(attr + '="onTpa": the page has no method "onTpa"'))
  }
  assert.throws(() => render('<button bindtap>x</button>', {}, methods), /bindtap names no handler/)
  // Checked statically, also in a branch the data does not take.
  assert.throws(() => render('<view wx:if="{{false}}"><button bindtap="nope">x</button></view>', {}, methods), /no method "nope"/)
  assert.doesNotThrow(() => render('<button bindtap="{{h}}">x</button>', { h: 'onTap' }, methods), 'a {{ }} handler is checked once evaluated')
  assert.throws(() => render('<button bindtap="{{h}}">x</button>', { h: 'nope' }, methods), /no method "nope"/)
})

test('wxml: root identifiers are checked in every branch, not only the one rendered', () => {
  assert.throws(() => render('<view wx:if="{{ok}}">yes</view><view wx:else>{{mesage}}</view>', { ok: true, message: '' }), /unknown binding "mesage"/)
  assert.throws(() => render('<view wx:for="{{list}}" wx:key="*this">{{itme}}</view>', { list: [] }), /unknown binding "itme"/, 'even for an empty list')
})

test('wxml: wx:if / wx:elif / wx:else', () => {
  const src = '<view wx:if="{{n > 1}}">many</view>\n<view wx:elif="{{n === 1}}">one</view>\n<view wx:else>none</view><view>end</view>'
  assert.equal(render(src, { n: 5 }).text, 'many\nend')
  assert.equal(render(src, { n: 1 }).text, 'one\nend')
  assert.equal(render(src, { n: 0 }).text, 'none\nend')
  assert.equal(render('<block wx:if="{{a}}"><text>A</text><text>B</text></block>', { a: 1 }).text, 'A\nB')
  assert.equal(render('<block wx:if="{{a}}"><text>A</text><text>B</text></block>', { a: 1 }).select('block').length, 0, '<block> leaves no element')
  assert.throws(() => render('<view wx:else>x</view>', {}), /wx:else without a wx:if/)
  assert.throws(() => render('<view wx:if="{{a}}">a</view><view>b</view><view wx:elif="{{b}}">c</view>', { a: 1, b: 1 }), /wx:elif without a wx:if/)
  assert.throws(() => render('<view wx:if="ok">x</view>', {}), /needs \{\{ \}\}/)
  assert.throws(() => render('<button disabled="false">x</button>', {}), /truthy/)
})

test('wxml: wx:for with wx:for-item / wx:for-index / wx:key', () => {
  const data = { groups: [{ id: 'g1', items: [{ k: 1, t: 'a' }, { k: 2, t: 'b' }] }, { id: 'g2', items: [] }] }
  const out = render(
    '<view wx:for="{{groups}}" wx:key="id" wx:for-item="g" wx:for-index="gi">' +
    '<text wx:for="{{g.items}}" wx:key="k">{{gi}}.{{index}} {{g.id}}:{{item.t}}</text></view>', data)
  assert.equal(out.text, '0.0 g1:a\n0.1 g1:b')
  assert.equal(render('<text wx:for="{{[3, 4]}}" wx:key="*this">{{item * 2}}</text>', {}).text, '6\n8')
  assert.equal(render('<text wx:for="{{obj}}" wx:key="*this">{{index}}={{item}}</text>', { obj: { a: 1, b: 2 } }).text, 'a=1\nb=2')
  assert.equal(render('<text wx:for="{{none}}" wx:key="*this">x</text>', { none: null }).text, '')
  assert.throws(() => render('<text wx:for="{{list}}">x</text>', { list: [] }), /wx:for without wx:key/)
  assert.throws(() => render('<text wx:for="{{list}}" wx:key="id">x</text>', { list: [{ key: 1 }] }), /item 0 has no key "id"/)
  assert.throws(() => render('<text wx:for="{{list}}" wx:key="id">x</text>', { list: [{ id: 1 }, { id: 1 }] }), /duplicate key 1/)
  assert.throws(() => render('<text wx:for="list" wx:key="*this">x</text>', { list: [] }), /needs \{\{ \}\}/)
  assert.throws(() => render('<view wx:for="{{list}}" wx:key="id">{{item.nme}}</view>', { list: [{ id: 1, name: 'a' }] }), /no key "nme"/)
})

test('wxml: <template>, <import> and <include>', () => {
  let tapped = 0
  const out = wxml.renderFile('test/fixtures/main.wxml', {
    title: '账单',
    rows: [{ id: 1, label: '余额', amount: 10 }, { id: 2, label: '冻结', amount: 0 }],
    footerText: '完'
  }, { methods: { onRow: () => tapped++ } })
  assert.equal(out.text, '账单\n余额:\nCNY 10\n冻结:\nCNY 0\n完')
  assert.deepEqual(out.select('view.row').map((r) => r.dataset.id), [1, 2])
  assert.equal(out.select('view.row')[0].events.bindtap, 'onRow')
  assert.equal(out.text.includes('neverRendered'), false, 'an included file\'s <template> definitions are not rendered')
  // Handlers inside imported templates must exist on the page.
  assert.throws(() => wxml.renderFile('test/fixtures/main.wxml', { title: '', rows: [], footerText: '' }, { methods: {} }), /no method "onRow"/)
  // A template sees only its data, not the page's.
  assert.throws(() => wxml.renderFile('test/fixtures/leaky.wxml', { title: 'x' }, { methods: { onRow: noop } }), /unknown binding "title".*data of <template name="leaky">/)
  assert.throws(() => render('<template is="nope" />', {}), /no <template name="nope">/)
  assert.throws(() => render('<include src="missing.wxml" />', {}), /no such file: missing\.wxml/)
  assert.equal(tapped, 0)
})

test('wxml: markup errors and unknown components', () => {
  assert.throws(() => render('<view><text>x</view>', {}), /<\/view> closes <text>/)
  assert.throws(() => render('<view>', {}), /unclosed <view>/)
  assert.throws(() => render('<view>{{a</view>', { a: 1 }), /unclosed \{\{/)
  assert.throws(() => render('<veiw>x</veiw>', {}), /unknown component <veiw>/)
  assert.throws(() => render('<wxs module="m">module.exports = {}</wxs>', {}), /<wxs> is not supported/)
  assert.throws(() => render('<view a="1" a="2" />', {}), /duplicate attribute a/)
  assert.equal(render('<!-- {{ignored}} --><view>a &amp; b&nbsp;c</view>', {}).text, 'a & b c')
})

test('every page of app.json renders its initial data (all bound fields declared, all handlers defined)', () => {
  shim.install({ baseUrl: 'http://127.0.0.1:9' })
  shim.reset()
  const app = JSON.parse(fs.readFileSync(path.join(shim.ROOT, 'app.json'), 'utf8'))
  for (const route of app.pages) {
    const page = shim.loadPage(route)
    const out = shim.render(page)
    assert.ok(out.text.length > 0, route + ' renders some text')
  }
  assert.deepEqual(shim.state.renderErrors, [])
})
