/**
 * A strict WXML renderer for the Node tests (zero dependencies).
 *
 * Tencent's miniprogram-simulate renders an unknown binding as empty text, so a misspelt field or a field
 * the server stopped sending goes unnoticed. This renderer throws instead (WxmlError, with file:line:col):
 *
 *   - an identifier that is neither a key of the page data nor a loop variable (wx:for-item / wx:for-index)
 *     nor a key of a <template>'s data;
 *   - a property read on a plain object that does not have that key (a null value is fine; reading a
 *     property of null / undefined gives undefined and renders empty, as in WeChat); an array index out
 *     of range; a property of a number or boolean; a function call (WXML has none without wxs);
 *   - an event attribute (bindtap, catchtap, bind:tap, capture-bind:…, mut-bind:…, bindinput,
 *     bindgetphonenumber, …) naming something that is not a method of the page;
 *   - an object or array rendered as text ("[object Object]"); wx:if / wx:elif / wx:for without {{ }};
 *     wx:elif / wx:else without a wx:if before it; wx:for without wx:key, a wx:key the items lack, or
 *     duplicate keys; a literal "false" in an attribute (truthy in WeChat: write "{{false}}");
 *   - a tag that is neither a built-in component nor declared in usingComponents (page or app.json);
 *     <wxs> (not supported here); an unknown <template is>; a missing <import>/<include> file;
 *     malformed markup (unclosed or mismatched tags, unclosed {{).
 *
 * Before rendering, a static pass checks every expression and event attribute in the whole file, also in
 * the branches the current data does not take: each expression's root identifiers must be keys of the
 * page data (or loop variables in scope), so every bound field has to be declared in the page's initial
 * data. Inside <template name> bodies only the event attributes are checked statically (their scope is
 * the data passed at the call site).
 *
 * Supported: elements, attributes, text, comments, {{ }} in text and attributes (literals, identifiers,
 * . and [] member access, ! - + typeof, * / % + -, comparisons, && ||, ?:, ( ), array and object literals,
 * ...spread in object literals), HTML entities, wx:if / wx:elif / wx:else, wx:for with wx:for-item /
 * wx:for-index / wx:key (a property name or *this), <block>, <template name>/<template is data>,
 * <import src>, <include src>, hidden="{{…}}" (hidden elements are left out of the text).
 *
 *   const wxml = require('./wxml')
 *   const out = wxml.renderPage(page)            // page: {route, data, methods…} as shim.loadPage returns
 *   out.text                                     // what the user sees, one text node per line
 *   wxml.select(out.tree, 'button.primary')      // elements by tag / .class / #id
 *   wxml.renderString(src, data, { methods })    // for unit tests
 */
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..')

class WxmlError extends Error {
  constructor(message, loc) {
    super((loc ? loc.file + ':' + loc.line + ':' + loc.col + ': ' : '') + message)
    this.name = 'WxmlError'
    this.loc = loc || null
  }
}

// Built-in components (base library 3.x) plus the WXML structural tags.
const BUILTIN_TAGS = new Set([
  'view', 'scroll-view', 'swiper', 'swiper-item', 'movable-area', 'movable-view', 'cover-view', 'cover-image',
  'match-media', 'page-container', 'root-portal', 'share-element', 'grid-view', 'list-view', 'sticky-header',
  'sticky-section', 'draggable-sheet', 'nested-scroll-header', 'nested-scroll-body', 'grid-builder', 'list-builder',
  'open-container', 'snapshot', 'span', 'icon', 'progress', 'rich-text', 'text', 'button', 'checkbox',
  'checkbox-group', 'editor', 'form', 'input', 'keyboard-accessory', 'label', 'picker', 'picker-view',
  'picker-view-column', 'radio', 'radio-group', 'slider', 'switch', 'textarea', 'functional-page-navigator',
  'navigator', 'audio', 'camera', 'channel-live', 'channel-video', 'image', 'live-player', 'live-pusher',
  'video', 'voip-room', 'map', 'canvas', 'web-view', 'ad', 'ad-custom', 'official-account', 'open-data',
  'store-product', 'page-meta', 'navigation-bar',
  'block', 'template', 'import', 'include', 'slot', 'wxs'
])

// Attributes WeChat reads as booleans: the string "false" is truthy there.
const BOOLEAN_ATTRS = new Set([
  'hidden', 'disabled', 'checked', 'loading', 'plain', 'focus', 'auto-focus', 'password', 'selectable', 'user-select',
  'disable-scroll', 'scroll-x', 'scroll-y', 'enable-flex', 'indicator-dots', 'autoplay', 'circular', 'vertical',
  'lazy-load', 'show-menu-by-longpress', 'confirm-hold', 'adjust-position', 'hold-keyboard', 'auto-height',
  'fixed', 'show-value', 'controls', 'muted', 'loop', 'catchtouchmove'
])

const EVENT_ATTR = /^(?:bind|catch|capture-bind|capture-catch|mut-bind)(?::)?([A-Za-z][\w-]*)$/
const CONTROL_ATTRS = new Set(['wx:if', 'wx:elif', 'wx:else', 'wx:for', 'wx:for-items', 'wx:for-item', 'wx:for-index', 'wx:key'])

const ENTITIES = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'", nbsp: '\u00a0', ensp: '\u2002', emsp: '\u2003' }

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, name) => {
    if (name[0] === '#') return String.fromCodePoint(name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10))
    return Object.prototype.hasOwnProperty.call(ENTITIES, name) ? ENTITIES[name] : m
  })
}

function hasOwn(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key)
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function describeValue(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return 'a ' + typeof v
}

// ---------- markup parser ----------

function locator(src, file) {
  const starts = [0]
  for (let i = 0; i < src.length; i++) if (src[i] === '\n') starts.push(i + 1)
  return (pos) => {
    let lo = 0
    let hi = starts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (starts[mid] <= pos) lo = mid
      else hi = mid - 1
    }
    return { file, line: lo + 1, col: pos - starts[lo] + 1 }
  }
}

/** Index just past the `}}` closing the `{{` at `from`; throws when it is not closed. */
function skipMustache(src, from, locAt) {
  const end = src.indexOf('}}', from + 2)
  if (end < 0) throw new WxmlError('unclosed {{', locAt(from))
  return end + 2
}

/** Parses WXML source into {type: 'root', children, file}; elements {type, tag, attrs: [{name, value, loc}], children, loc}. */
function parse(src, file) {
  file = file || '<wxml>'
  const locAt = locator(src, file)
  const root = { type: 'root', children: [], file }
  const stack = [root]
  let i = 0
  const top = () => stack[stack.length - 1]
  while (i < src.length) {
    if (src.startsWith('<!--', i)) {
      const end = src.indexOf('-->', i + 4)
      if (end < 0) throw new WxmlError('unclosed comment', locAt(i))
      i = end + 3
      continue
    }
    if (src[i] === '<' && src[i + 1] === '/') {
      const m = /^<\/\s*([A-Za-z][\w:.-]*)\s*>/.exec(src.slice(i))
      if (!m) throw new WxmlError('malformed closing tag', locAt(i))
      const open = top()
      if (open.type !== 'element') throw new WxmlError('</' + m[1] + '> closes nothing', locAt(i))
      if (open.tag !== m[1]) throw new WxmlError('</' + m[1] + '> closes <' + open.tag + '> opened at line ' + open.loc.line, locAt(i))
      stack.pop()
      i += m[0].length
      continue
    }
    if (src[i] === '<') {
      const start = i
      const nm = /^<([A-Za-z][\w:.-]*)/.exec(src.slice(i))
      if (!nm) throw new WxmlError('stray "<" (write &lt; in text)', locAt(i))
      const node = { type: 'element', tag: nm[1], attrs: [], children: [], loc: locAt(start) }
      i += nm[0].length
      let selfClosing = false
      for (;;) {
        while (i < src.length && /\s/.test(src[i])) i++
        if (i >= src.length) throw new WxmlError('unclosed <' + node.tag + '>', node.loc)
        if (src.startsWith('/>', i)) {
          selfClosing = true
          i += 2
          break
        }
        if (src[i] === '>') {
          i++
          break
        }
        const an = /^[^\s=/>"']+/.exec(src.slice(i))
        if (!an) throw new WxmlError('malformed attribute in <' + node.tag + '>', locAt(i))
        const attr = { name: an[0], value: null, loc: locAt(i) }
        i += an[0].length
        let j = i
        while (j < src.length && /\s/.test(src[j])) j++
        if (src[j] === '=') {
          j++
          while (j < src.length && /\s/.test(src[j])) j++
          const q = src[j]
          if (q === '"' || q === "'") {
            let k = j + 1
            while (k < src.length && src[k] !== q) k = src.startsWith('{{', k) ? skipMustache(src, k, locAt) : k + 1
            if (k >= src.length) throw new WxmlError('unclosed attribute value', attr.loc)
            attr.value = src.slice(j + 1, k)
            i = k + 1
          } else {
            const uv = /^[^\s>]+/.exec(src.slice(j))
            if (!uv) throw new WxmlError('missing value for ' + attr.name, attr.loc)
            attr.value = uv[0]
            i = j + uv[0].length
          }
        }
        if (node.attrs.some((a) => a.name === attr.name)) throw new WxmlError('duplicate attribute ' + attr.name, attr.loc)
        node.attrs.push(attr)
      }
      if (node.tag === 'wxs') throw new WxmlError('<wxs> is not supported by the test renderer', node.loc)
      top().children.push(node)
      if (!selfClosing) stack.push(node)
      continue
    }
    const start = i
    while (i < src.length && src[i] !== '<') i = src.startsWith('{{', i) ? skipMustache(src, i, locAt) : i + 1
    top().children.push({ type: 'text', value: src.slice(start, i), loc: locAt(start) })
  }
  if (stack.length > 1) throw new WxmlError('unclosed <' + top().tag + '>', top().loc)
  return root
}

/** The location `offset` characters into a value that starts at `loc`. */
function advance(loc, value, offset) {
  if (!loc) return loc
  const before = value.slice(0, offset)
  const nl = before.lastIndexOf('\n')
  if (nl < 0) return { file: loc.file, line: loc.line, col: loc.col + offset }
  return { file: loc.file, line: loc.line + before.split('\n').length - 1, col: offset - nl }
}

/** Splits "a {{b}} c" into [{lit}, {expr, src, loc}, {lit}]; literal parts have entities decoded. */
function splitMustache(value, loc, isText) {
  const parts = []
  let i = 0
  while (i < value.length) {
    const open = value.indexOf('{{', i)
    if (open < 0) {
      parts.push({ lit: decodeEntities(value.slice(i)) })
      break
    }
    if (open > i) parts.push({ lit: decodeEntities(value.slice(i, open)) })
    const close = value.indexOf('}}', open + 2)
    if (close < 0) throw new WxmlError('unclosed {{ in "' + value + '"', loc)
    const src = value.slice(open + 2, close)
    // In text the {{ is located exactly; in an attribute the attribute is.
    const at = isText ? advance(loc, value, open) : loc
    if (!src.trim()) throw new WxmlError('empty {{ }}', at)
    parts.push({ expr: compile(src, at), src: src.trim(), loc: at })
    i = close + 2
  }
  return parts
}

// ---------- expressions ----------

const PUNCT = ['...', '===', '!==', '==', '!=', '<=', '>=', '&&', '||', '!', '+', '-', '*', '/', '%', '<', '>', '?', ':', '(', ')', '[', ']', '{', '}', ',', '.']

function tokenize(src, loc) {
  const tokens = []
  let i = 0
  while (i < src.length) {
    const c = src[i]
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] || ''))) {
      const m = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i))
      tokens.push({ t: 'num', v: Number(m[0]), pos: i })
      i += m[0].length
      continue
    }
    if (c === '"' || c === "'") {
      let j = i + 1
      let out = ''
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) {
          const e = src[j + 1]
          out += e === 'n' ? '\n' : e === 't' ? '\t' : e
          j += 2
        } else {
          out += src[j++]
        }
      }
      if (j >= src.length) throw new WxmlError('unclosed string in {{' + src + '}}', loc)
      tokens.push({ t: 'str', v: out, pos: i })
      i = j + 1
      continue
    }
    const id = /^[A-Za-z_$][\w$]*/.exec(src.slice(i))
    if (id) {
      tokens.push({ t: 'id', v: id[0], pos: i })
      i += id[0].length
      continue
    }
    const p = PUNCT.find((x) => src.startsWith(x, i))
    if (!p) throw new WxmlError('unexpected "' + c + '" in {{' + src + '}}', loc)
    tokens.push({ t: 'p', v: p, pos: i })
    i += p.length
  }
  tokens.push({ t: 'eof', pos: src.length })
  return tokens
}

const BINARY = {
  '||': 1, '&&': 2,
  '==': 3, '!=': 3, '===': 3, '!==': 3,
  '<': 4, '>': 4, '<=': 4, '>=': 4,
  '+': 5, '-': 5,
  '*': 6, '/': 6, '%': 6
}

/**
 * Compiles the inside of {{ }} to an AST; `objectBody` parses it as the inside of an object literal
 * (<template data="{{a, b: 1, ...c}}">). Nodes carry `src` (their text) for error messages.
 */
function compile(src, loc, objectBody) {
  const tokens = tokenize(src, loc)
  let k = 0
  const peek = () => tokens[k]
  const isP = (v) => tokens[k].t === 'p' && tokens[k].v === v
  const fail = (msg) => {
    throw new WxmlError(msg + ' in {{' + src.trim() + '}}', loc)
  }
  const expect = (v) => {
    if (!isP(v)) fail('expected "' + v + '"')
    k++
  }
  const text = (from, node) => Object.assign(node, { src: src.slice(from, tokens[k].pos).trim() })

  function ternary() {
    const from = peek().pos
    const test = binary(1)
    if (!isP('?')) return test
    k++
    const yes = ternary()
    expect(':')
    const no = ternary()
    return text(from, { type: 'cond', test, yes, no })
  }

  function binary(minPrec) {
    const from = peek().pos
    let left = unary()
    for (;;) {
      const tok = peek()
      const prec = tok.t === 'p' ? BINARY[tok.v] : undefined
      if (!prec || prec < minPrec) return left
      k++
      const right = binary(prec + 1)
      left = text(from, { type: 'bin', op: tok.v, left, right })
    }
  }

  function unary() {
    const from = peek().pos
    if (isP('!') || isP('-') || isP('+')) {
      const op = peek().v
      k++
      return text(from, { type: 'unary', op, arg: unary() })
    }
    if (peek().t === 'id' && peek().v === 'typeof') {
      k++
      return text(from, { type: 'unary', op: 'typeof', arg: unary() })
    }
    return postfix()
  }

  function postfix() {
    const from = peek().pos
    let node = primary()
    for (;;) {
      if (isP('.')) {
        k++
        const name = peek()
        if (name.t !== 'id') fail('expected a property name after "."')
        k++
        node = text(from, { type: 'member', object: node, key: { type: 'lit', value: name.v }, computed: false })
      } else if (isP('[')) {
        k++
        const key = ternary()
        expect(']')
        node = text(from, { type: 'member', object: node, key, computed: true })
      } else if (isP('(')) {
        fail('function calls are not allowed in WXML (no wxs here)')
      } else {
        return node
      }
    }
  }

  function objectLiteral(closing) {
    const from = peek().pos
    const props = []
    while (!(closing ? isP('}') : peek().t === 'eof')) {
      if (isP('...')) {
        k++
        props.push({ spread: ternary() })
      } else {
        const keyTok = peek()
        if (keyTok.t !== 'id' && keyTok.t !== 'str' && keyTok.t !== 'num') fail('expected a key')
        k++
        if (isP(':')) {
          k++
          props.push({ key: String(keyTok.v), value: ternary() })
        } else if (keyTok.t === 'id') {
          props.push({ key: keyTok.v, value: text(keyTok.pos, { type: 'id', name: keyTok.v }) })
        } else {
          fail('expected ":"')
        }
      }
      if (isP(',')) k++
      else break
    }
    if (closing) expect('}')
    return text(from, { type: 'object', props })
  }

  function primary() {
    const tok = peek()
    const from = tok.pos
    if (tok.t === 'num' || tok.t === 'str') {
      k++
      return text(from, { type: 'lit', value: tok.v })
    }
    if (tok.t === 'id') {
      k++
      if (tok.v === 'true' || tok.v === 'false') return text(from, { type: 'lit', value: tok.v === 'true' })
      if (tok.v === 'null') return text(from, { type: 'lit', value: null })
      if (tok.v === 'undefined') return text(from, { type: 'lit', value: undefined })
      return text(from, { type: 'id', name: tok.v })
    }
    if (isP('(')) {
      k++
      const inner = ternary()
      expect(')')
      return inner
    }
    if (isP('[')) {
      k++
      const items = []
      while (!isP(']')) {
        items.push(ternary())
        if (isP(',')) k++
        else break
      }
      expect(']')
      return text(from, { type: 'array', items })
    }
    if (isP('{')) {
      k++
      return objectLiteral(true)
    }
    fail(tok.t === 'eof' ? 'unexpected end' : 'unexpected "' + tok.v + '"')
  }

  const ast = objectBody ? objectLiteral(false) : ternary()
  if (peek().t !== 'eof') fail('unexpected "' + peek().v + '"')
  return ast
}

/** Root identifiers an expression reads (for the static pass). */
function rootIdentifiers(node, out) {
  out = out || []
  if (!node) return out
  switch (node.type) {
    case 'id': out.push(node.name); break
    case 'member': rootIdentifiers(node.object, out); if (node.computed) rootIdentifiers(node.key, out); break
    case 'unary': rootIdentifiers(node.arg, out); break
    case 'bin': rootIdentifiers(node.left, out); rootIdentifiers(node.right, out); break
    case 'cond': rootIdentifiers(node.test, out); rootIdentifiers(node.yes, out); rootIdentifiers(node.no, out); break
    case 'array': node.items.forEach((x) => rootIdentifiers(x, out)); break
    case 'object': node.props.forEach((p) => rootIdentifiers(p.spread || p.value, out)); break
    default: break
  }
  return out
}

/** Scope: a chain of frames {vars, label}; lookups go innermost first; the outermost is the page data. */
function lookup(scope, name, node, loc) {
  for (let s = scope; s; s = s.parent) if (hasOwn(s.vars, name)) return s.vars[name]
  throw new WxmlError('unknown binding "' + name + '" in {{' + node.src + '}}: not a key of ' + scopeNames(scope), loc)
}

function scopeNames(scope) {
  const parts = []
  for (let s = scope; s; s = s.parent) parts.push(s.label + ' [' + Object.keys(s.vars).join(', ') + ']')
  return parts.join(' or ')
}

function evaluate(node, scope, loc) {
  switch (node.type) {
    case 'lit': return node.value
    case 'id': return lookup(scope, node.name, node, loc)
    case 'member': {
      const obj = evaluate(node.object, scope, loc)
      const key = evaluate(node.key, scope, loc)
      if (obj === null || obj === undefined) return undefined // WeChat renders it empty
      const where = ' in {{' + node.src + '}}'
      if (Array.isArray(obj) || typeof obj === 'string') {
        if (key === 'length') return obj.length
        const idx = typeof key === 'number' ? key : (/^\d+$/.test(String(key)) ? Number(key) : NaN)
        if (!Number.isInteger(idx)) throw new WxmlError('"' + String(key) + '" is not an index of ' + describeValue(obj) + where, loc)
        if (idx < 0 || idx >= obj.length) throw new WxmlError('index ' + idx + ' out of range (length ' + obj.length + ')' + where, loc)
        return obj[idx]
      }
      if (isPlainObject(obj)) {
        if (!hasOwn(obj, String(key))) {
          throw new WxmlError('no key "' + String(key) + '"' + where + ' (' + node.object.src + ' has ' + JSON.stringify(Object.keys(obj)) + ')', loc)
        }
        return obj[key]
      }
      throw new WxmlError('reading "' + String(key) + '" of ' + describeValue(obj) + where, loc)
    }
    case 'unary': {
      const v = evaluate(node.arg, scope, loc)
      if (node.op === '!') return !v
      if (node.op === '-') return -v
      if (node.op === '+') return +v
      return typeof v
    }
    case 'bin': {
      if (node.op === '&&') {
        const l = evaluate(node.left, scope, loc)
        return l ? evaluate(node.right, scope, loc) : l
      }
      if (node.op === '||') {
        const l = evaluate(node.left, scope, loc)
        return l ? l : evaluate(node.right, scope, loc)
      }
      const a = evaluate(node.left, scope, loc)
      const b = evaluate(node.right, scope, loc)
      switch (node.op) {
        case '==': return a == b // eslint-disable-line eqeqeq
        case '!=': return a != b // eslint-disable-line eqeqeq
        case '===': return a === b
        case '!==': return a !== b
        case '<': return a < b
        case '>': return a > b
        case '<=': return a <= b
        case '>=': return a >= b
        case '+': return a + b
        case '-': return a - b
        case '*': return a * b
        case '/': return a / b
        default: return a % b
      }
    }
    case 'cond': return evaluate(node.test, scope, loc) ? evaluate(node.yes, scope, loc) : evaluate(node.no, scope, loc)
    case 'array': return node.items.map((x) => evaluate(x, scope, loc))
    case 'object': {
      const out = {}
      for (const p of node.props) {
        if (p.spread) {
          const v = evaluate(p.spread, scope, loc)
          if (v !== null && v !== undefined) {
            if (!isPlainObject(v)) throw new WxmlError('spreading ' + describeValue(v) + ' in {{' + node.src + '}}', loc)
            Object.assign(out, v)
          }
        } else {
          out[p.key] = evaluate(p.value, scope, loc)
        }
      }
      return out
    }
    default: throw new WxmlError('cannot evaluate ' + node.type, loc)
  }
}

function toText(value, src, loc) {
  if (value === null || value === undefined) return ''
  if (typeof value === 'object') throw new WxmlError('{{' + src + '}} renders ' + describeValue(value) + ' as text', loc)
  return String(value)
}

/** An attribute value: a lone {{expr}} keeps its type, anything else is a string. */
function attrValue(parts, scope, loc) {
  if (parts.length === 1 && parts[0].expr) return evaluate(parts[0].expr, scope, loc)
  return parts.map((p) => (p.expr ? toText(evaluate(p.expr, scope, loc), p.src, loc) : p.lit)).join('')
}

// ---------- files, templates, imports ----------

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (e) {
    return null
  }
}

function resolveSrc(src, fromFile, loc) {
  if (!src) throw new WxmlError('missing src', loc)
  let target = src.startsWith('/') ? path.join(ROOT, src) : path.resolve(path.dirname(fromFile), src)
  if (!target.endsWith('.wxml')) target += '.wxml'
  if (!fs.existsSync(target)) throw new WxmlError('no such file: ' + src + ' (' + path.relative(ROOT, target) + ')', loc)
  return target
}

function literalAttr(node, name) {
  const a = node.attrs.find((x) => x.name === name)
  return a ? a.value : undefined
}

const unitCache = new Map()

/**
 * A parsed file: {file, ast, templates: Map(name → {node, unit})} with its own <template name> definitions
 * and those of the files it <import>s (not transitively, as in WeChat).
 */
function loadUnit(file, src, chain) {
  chain = chain || []
  const key = file + '\0' + (src === undefined ? '' : src)
  if (src === undefined && unitCache.has(key)) {
    const cached = unitCache.get(key)
    if (cached.mtime === fs.statSync(file).mtimeMs) return cached.unit
  }
  if (chain.includes(file)) throw new WxmlError('import/include cycle: ' + chain.concat(file).map((f) => path.relative(ROOT, f)).join(' → '))
  const text = src === undefined ? fs.readFileSync(file, 'utf8') : src
  const rel = path.isAbsolute(file) ? path.relative(ROOT, file) : file
  const unit = { file, ast: parse(text, rel), templates: new Map(), includes: new Map() }
  const own = []
  const walk = (nodes) => {
    for (const n of nodes) {
      if (n.type !== 'element') continue
      if (n.tag === 'template' && literalAttr(n, 'name') !== undefined) {
        own.push(n)
        continue
      }
      if (n.tag === 'import') {
        const target = resolveSrc(literalAttr(n, 'src'), file, n.loc)
        const imported = loadUnit(target, undefined, chain.concat(file))
        for (const [name, def] of imported.templates) if (def.unit === imported) unit.templates.set(name, def)
        continue
      }
      if (n.tag === 'include') {
        const target = resolveSrc(literalAttr(n, 'src'), file, n.loc)
        unit.includes.set(n, loadUnit(target, undefined, chain.concat(file)))
        continue
      }
      walk(n.children)
    }
  }
  walk(unit.ast.children)
  for (const n of own) {
    const name = literalAttr(n, 'name')
    if (!name || /\{\{/.test(name)) throw new WxmlError('<template name> must be a literal name', n.loc)
    unit.templates.set(name, { node: n, unit })
  }
  if (src === undefined) unitCache.set(key, { unit, mtime: fs.statSync(file).mtimeMs })
  return unit
}

function componentsFor(pageFile) {
  const names = new Set()
  const app = readJson(path.join(ROOT, 'app.json'))
  const page = pageFile ? readJson(pageFile.replace(/\.wxml$/, '.json')) : null
  for (const conf of [app, page]) for (const n of Object.keys((conf && conf.usingComponents) || {})) names.add(n)
  return names
}

// ---------- static pass ----------

function eventName(attrName) {
  const m = EVENT_ATTR.exec(attrName)
  return m ? m[1] : null
}

function checkHandler(name, value, methods, loc) {
  if (typeof value !== 'string' || !value.trim()) throw new WxmlError(name + ' names no handler', loc)
  if (typeof methods[value] !== 'function') {
    throw new WxmlError(name + '="' + value + '": the page has no method "' + value + '"', loc)
  }
}

/** Per-element loop variables that wx:for introduces (its own other attributes see them). */
function loopVars(node) {
  const item = literalAttr(node, 'wx:for-item') || 'item'
  const index = literalAttr(node, 'wx:for-index') || 'index'
  return { [item]: true, [index]: true }
}

function forAttr(node) {
  return node.attrs.find((a) => a.name === 'wx:for' || a.name === 'wx:for-items')
}

/**
 * Checks every element of a unit without evaluating: known tags, control attributes written with {{ }},
 * literal event handlers that exist, root identifiers that are in scope (names: Set or null to skip).
 */
function staticCheck(unit, ctx, names, seen) {
  seen = seen || new Set()
  if (seen.has(unit)) return
  seen.add(unit)
  const checkExpr = (parts, scopeNames, loc) => {
    if (!scopeNames) return
    for (const p of parts) {
      if (!p.expr) continue
      for (const id of rootIdentifiers(p.expr)) {
        if (!scopeNames.has(id)) {
          throw new WxmlError('unknown binding "' + id + '" in {{' + p.src + '}}: not a key of the page data [' + [...ctx.dataKeys].join(', ') + '] nor a loop variable', p.loc || loc)
        }
      }
    }
  }
  const visit = (nodes, scopeNames) => {
    for (const n of nodes) {
      if (n.type === 'text') {
        checkExpr(splitMustache(n.value, n.loc, true), scopeNames, n.loc)
        continue
      }
      if (!BUILTIN_TAGS.has(n.tag) && !ctx.components.has(n.tag)) {
        throw new WxmlError('unknown component <' + n.tag + '> (not built in, not in usingComponents)', n.loc)
      }
      if (n.tag === 'import') continue
      if (n.tag === 'include') {
        const inc = unit.includes.get(n)
        visit(inc.ast.children.filter((c) => !(c.type === 'element' && c.tag === 'template' && literalAttr(c, 'name') !== undefined)), scopeNames)
        staticCheck(inc, ctx, null, seen)
        continue
      }
      if (n.tag === 'template' && literalAttr(n, 'name') !== undefined) {
        visit(n.children, null) // scope is the call site's data: only handlers and tags here
        continue
      }
      const fa = forAttr(n)
      let inner = scopeNames
      if (fa) {
        if (!/\{\{/.test(fa.value || '')) throw new WxmlError(fa.name + '="' + fa.value + '" needs {{ }} (a plain string iterates its characters)', fa.loc)
        checkExpr(splitMustache(fa.value, fa.loc), scopeNames, fa.loc)
        const key = literalAttr(n, 'wx:key')
        if (key === undefined || key === null) throw new WxmlError('wx:for without wx:key', n.loc)
        if (/\{\{/.test(key)) throw new WxmlError('wx:key="' + key + '" takes a property name of the items or *this, not {{ }}', n.loc)
        if (scopeNames) inner = new Set([...scopeNames, ...Object.keys(loopVars(n))])
      }
      for (const a of n.attrs) {
        if (a === fa || a.name === 'wx:for-item' || a.name === 'wx:for-index' || a.name === 'wx:key') continue
        if (a.name === 'wx:else') {
          if (a.value !== null) throw new WxmlError('wx:else takes no value', a.loc)
          continue
        }
        const ev = eventName(a.name)
        if (ev && a.value === null) throw new WxmlError(a.name + ' names no handler', a.loc)
        if (a.value === null) continue
        if ((a.name === 'wx:if' || a.name === 'wx:elif') && !/\{\{/.test(a.value)) {
          throw new WxmlError(a.name + '="' + a.value + '" needs {{ }} (a non-empty string is always true)', a.loc)
        }
        if (BOOLEAN_ATTRS.has(a.name) && a.value.trim() === 'false') throw new WxmlError(a.name + '="false" is the string "false", which is truthy: write ' + a.name + '="{{false}}"', a.loc)
        const parts = n.tag === 'template' && a.name === 'data'
          ? [{ expr: compile(a.value.replace(/^\s*\{\{|\}\}\s*$/g, ''), a.loc, true), src: a.value }]
          : splitMustache(a.value, a.loc)
        checkExpr(parts, inner, a.loc)
        if (ev && parts.every((p) => !p.expr)) checkHandler(a.name, a.value.trim(), ctx.methods, a.loc)
      }
      visit(n.children, inner)
    }
  }
  visit(unit.ast.children, names)
  // Templates imported from other files: their handlers and tags.
  for (const def of unit.templates.values()) if (def.unit !== unit) staticCheck(def.unit, ctx, null, seen)
}

// ---------- render ----------

function renderNodes(nodes, unit, scope, ctx, out) {
  let chain = null // {matched} while inside a wx:if / wx:elif / wx:else run
  for (const n of nodes) {
    if (n.type === 'text') {
      if (!n.value.trim()) continue // whitespace between siblings does not break an if/else chain
      chain = null
      const text = splitMustache(n.value, n.loc, true).map((p) => (p.expr ? toText(evaluate(p.expr, scope, p.loc), p.src, p.loc) : p.lit)).join('')
      out.push({ type: 'text', text })
      continue
    }
    const has = (name) => n.attrs.some((a) => a.name === name)
    if (has('wx:if')) {
      chain = { matched: false }
    } else if (has('wx:elif') || has('wx:else')) {
      if (!chain) throw new WxmlError((has('wx:elif') ? 'wx:elif' : 'wx:else') + ' without a wx:if before it', n.loc)
    } else {
      chain = null
    }
    const fa = forAttr(n)
    if (fa) {
      const list = attrValue(splitMustache(fa.value, fa.loc), scope, fa.loc)
      const vars = { item: literalAttr(n, 'wx:for-item') || 'item', index: literalAttr(n, 'wx:for-index') || 'index' }
      const keyName = literalAttr(n, 'wx:key')
      let entries
      if (list === null || list === undefined) entries = []
      else if (Array.isArray(list)) entries = list.map((v, i) => [i, v])
      else if (isPlainObject(list)) entries = Object.keys(list).map((key) => [key, list[key]])
      else if (typeof list === 'number' && Number.isInteger(list) && list >= 0) entries = Array.from({ length: list }, (_, i) => [i, i])
      else throw new WxmlError(fa.name + ' over ' + describeValue(list), fa.loc)
      const keys = new Set()
      for (const [index, item] of entries) {
        const key = keyName === '*this' ? item : (isPlainObject(item) && hasOwn(item, keyName) ? item[keyName] : undefined)
        if (keyName !== '*this' && !(isPlainObject(item) && hasOwn(item, keyName))) {
          throw new WxmlError('wx:key="' + keyName + '": item ' + JSON.stringify(index) + ' has no key "' + keyName + '"', n.loc)
        }
        if (keys.has(key)) throw new WxmlError('wx:key="' + keyName + '": duplicate key ' + JSON.stringify(key), n.loc)
        keys.add(key)
        const inner = { vars: { [vars.item]: item, [vars.index]: index }, label: 'wx:for variables', parent: scope }
        renderElement(n, unit, inner, ctx, out, chain)
      }
      if (chain) chain.matched = true // a wx:for with wx:if: evaluated per item, the chain ends here
      continue
    }
    renderElement(n, unit, scope, ctx, out, chain)
  }
}

function renderElement(n, unit, scope, ctx, out, chain) {
  const ifAttr = n.attrs.find((a) => a.name === 'wx:if' || a.name === 'wx:elif')
  if (n.attrs.some((a) => a.name === 'wx:else')) {
    if (chain.matched) return
    chain.matched = true
  } else if (ifAttr) {
    if (ifAttr.name === 'wx:elif' && chain.matched) return
    const ok = !!attrValue(splitMustache(ifAttr.value, ifAttr.loc), scope, ifAttr.loc)
    if (!ok) return
    if (chain) chain.matched = true
  }
  if (n.tag === 'import') return
  if (n.tag === 'template') {
    if (literalAttr(n, 'name') !== undefined) return // a definition
    const isAttr = n.attrs.find((a) => a.name === 'is')
    if (!isAttr) throw new WxmlError('<template> needs name or is', n.loc)
    const name = attrValue(splitMustache(isAttr.value, isAttr.loc), scope, isAttr.loc)
    const def = unit.templates.get(name)
    if (!def) throw new WxmlError('no <template name="' + name + '"> defined or imported here (have: ' + [...unit.templates.keys()].join(', ') + ')', n.loc)
    const dataAttr = n.attrs.find((a) => a.name === 'data')
    const data = dataAttr ? evaluate(compile(dataAttr.value.replace(/^\s*\{\{|\}\}\s*$/g, ''), dataAttr.loc, true), scope, dataAttr.loc) : {}
    const tscope = { vars: data, label: 'the data of <template name="' + name + '">', parent: null }
    renderNodes(def.node.children, def.unit, tscope, ctx, out)
    return
  }
  if (n.tag === 'include') {
    const inc = unit.includes.get(n)
    const body = inc.ast.children.filter((c) => !(c.type === 'element' && c.tag === 'template' && literalAttr(c, 'name') !== undefined))
    renderNodes(body, inc, scope, ctx, out)
    return
  }
  if (n.tag === 'block') {
    renderNodes(n.children, unit, scope, ctx, out)
    return
  }
  const el = { type: 'element', tag: n.tag, attrs: {}, dataset: {}, events: {}, children: [], hidden: false, loc: n.loc }
  for (const a of n.attrs) {
    if (CONTROL_ATTRS.has(a.name)) continue
    const value = a.value === null ? true : attrValue(splitMustache(a.value, a.loc), scope, a.loc)
    const ev = eventName(a.name)
    if (ev) {
      checkHandler(a.name, value, ctx.methods, a.loc)
      el.events[a.name] = value
      continue
    }
    if (a.name.startsWith('data-')) el.dataset[a.name.slice(5).replace(/-([a-z])/g, (m, c) => c.toUpperCase())] = value
    el.attrs[a.name] = value
  }
  el.hidden = !!el.attrs.hidden
  renderNodes(n.children, unit, scope, ctx, el.children)
  out.push(el)
}

// ---------- results ----------

function normalise(s) {
  return s.replace(/\s+/g, ' ').trim()
}

/** The visible text of a node (hidden elements left out), one text node per line. */
function textOf(node) {
  const lines = []
  const walk = (n) => {
    if (n.type === 'text') {
      const t = normalise(n.text)
      if (t) lines.push(t)
      return
    }
    if (n.hidden) return
    n.children.forEach(walk)
  }
  walk(node)
  return lines.join('\n')
}

function walkElements(node, fn) {
  if (node.type !== 'element' && node.type !== 'root') return
  if (node.type === 'element') fn(node)
  node.children.forEach((c) => walkElements(c, fn))
}

/** Elements matching a simple selector: tag, .class, #id or a combination (button.primary). */
function select(tree, selector) {
  const m = /^([\w-]*)((?:[.#][\w-]+)*)$/.exec(String(selector).trim())
  if (!m) throw new Error('unsupported selector: ' + selector)
  const tag = m[1]
  const classes = (m[2].match(/\.[\w-]+/g) || []).map((c) => c.slice(1))
  const ids = (m[2].match(/#[\w-]+/g) || []).map((c) => c.slice(1))
  const found = []
  walkElements(tree, (el) => {
    if (tag && el.tag !== tag) return
    const cls = String(el.attrs.class || '').split(/\s+/)
    if (!classes.every((c) => cls.includes(c))) return
    if (ids.length && !ids.includes(el.attrs.id)) return
    found.push(el)
  })
  return found
}

function methodsOf(page) {
  const methods = {}
  for (let o = page; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) if (!(k in methods) && typeof page[k] === 'function') methods[k] = page[k]
  }
  return methods
}

function renderUnit(unit, data, options) {
  options = options || {}
  if (!isPlainObject(data)) throw new WxmlError('page data must be a plain object, got ' + describeValue(data))
  const ctx = {
    methods: options.methods || {},
    components: options.components || componentsFor(path.isAbsolute(unit.file) ? unit.file : null),
    dataKeys: new Set(Object.keys(data))
  }
  staticCheck(unit, ctx, new Set(Object.keys(data)))
  const tree = { type: 'root', children: [] }
  renderNodes(unit.ast.children, unit, { vars: data, label: 'the page data', parent: null }, ctx, tree.children)
  return { tree, text: textOf(tree), select: (sel) => select(tree, sel) }
}

/** Renders WXML source (file is used for error messages and to resolve relative <import>/<include>). */
function renderString(src, data, options) {
  options = options || {}
  const file = options.file ? path.resolve(ROOT, options.file) : path.join(ROOT, '<inline>.wxml')
  return renderUnit(loadUnit(file, src), data, options)
}

function renderFile(file, data, options) {
  return renderUnit(loadUnit(path.resolve(ROOT, file)), data, options)
}

/** Renders <route>.wxml with the page's current data; its methods are the handlers events may name. */
function renderPage(page, options) {
  if (!page || !page.route) throw new Error('renderPage needs a page with a route (shim.loadPage)')
  return renderFile(path.join(ROOT, page.route + '.wxml'), page.data, Object.assign({ methods: methodsOf(page) }, options || {}))
}

module.exports = { renderPage, renderFile, renderString, parse, compile, evaluate, select, textOf, WxmlError, BUILTIN_TAGS }
