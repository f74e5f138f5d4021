/**
 * Compiles a mini-program's WXML and WXSS with Tencent's own compilers (wcc, wcsc), as WeChat DevTools does
 * before a page can be previewed or uploaded: `miniprogram-compiler` (npm, pinned in package.json here) wraps the
 * Linux builds of both binaries.
 *
 *   node compile.js <project root>   →  stdout: {"results": [{file, page, kind, ok, message}, ...]}
 *
 * Every page of app.json is compiled on its own (its .wxml with the files it imports or includes, and its .wxss),
 * and app.wxss, so a failure names the page it belongs to and carries the compiler's own message
 * (`pages/x/x.wxml:2:26: expect end-tag ...`). A page's WXML must also run: the generated code is evaluated and
 * the page rendered with empty data by Tencent's own runtime in that code.
 * Used by tests/e2e/test_miniprogram_compile.py; exits 0 whatever the pages' results (2 on a usage error).
 */
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const vm = require('node:vm')
const { wxmlToJs } = require('miniprogram-compiler')
// The package's wxssToJs() loses wcsc's message (its wcsc wrapper *returns* an Error, which wxssToJs then reads as
// output and fails on with a TypeError), so WXSS goes through that wrapper directly: same binary, same arguments.
const wcsc = require('miniprogram-compiler/src/wcsc')

/** The page's WXML and every WXML it pulls in with <import src> / <include src>, relative to root. */
function wxmlClosure(root, first) {
  const seen = []
  const todo = [first]
  while (todo.length) {
    const file = todo.pop()
    if (seen.includes(file)) continue
    seen.push(file)
    const text = fs.readFileSync(path.join(root, file), 'utf8')
    for (const m of text.matchAll(/<(?:import|include)\s[^>]*\bsrc\s*=\s*["']([^"']+)["']/g)) {
      let src = m[1].endsWith('.wxml') ? m[1] : m[1] + '.wxml'
      src = src.startsWith('/') ? src.slice(1) : path.posix.join(path.posix.dirname(file), src)
      if (fs.existsSync(path.join(root, src))) todo.push(src) // a missing one is wcc's to report
    }
  }
  return seen
}

function compileWxml(root, page) {
  const file = page + '.wxml'
  if (!fs.existsSync(path.join(root, file))) return { ok: false, message: file + ' does not exist' }
  let code
  try {
    code = wxmlToJs(root, { wxmlList: wxmlClosure(root, file), wxsList: [] })
  } catch (err) {
    return { ok: false, message: String(err.message || err).trim() }
  }
  // The generated code is what WeChat's view layer runs: it must give this page a render function that renders.
  try {
    const context = vm.createContext({ window: {}, console: { log() {}, warn() {}, error() {} } })
    const $gwx = vm.runInContext('(function (global) {' + code + '})({})', context, { timeout: 10000 })
    const render = $gwx(file)
    if (typeof render !== 'function') return { ok: false, message: 'wcc output has no render function for ' + file }
    const tree = render({}, {}, {})
    if (!tree || tree.tag !== 'wx-page' || !tree.children.length) {
      return { ok: false, message: 'the compiled ' + file + ' rendered no page: ' + JSON.stringify(tree).slice(0, 200) }
    }
  } catch (err) {
    return { ok: false, message: 'the compiled ' + file + ' does not run: ' + String((err && err.message) || err) }
  }
  return { ok: true, message: '' }
}

function compileWxss(root, base) {
  const file = base + '.wxss'
  if (!fs.existsSync(path.join(root, file))) return null // a page needs no stylesheet
  let out
  try {
    out = wcsc(root, [base], {})
  } catch (err) {
    return { ok: false, message: String(err.message || err).trim() }
  }
  if (out instanceof Error) return { ok: false, message: out.message.trim() }
  if (typeof out[file] !== 'string' || !out[file].length) {
    return { ok: false, message: 'wcsc gave no output for ' + file + ' (got ' + Object.keys(out).join(', ') + ')' }
  }
  return { ok: true, message: '' }
}

function main() {
  const root = process.argv[2]
  if (!root) {
    process.stderr.write('usage: node compile.js <mini-program project root>\n')
    process.exit(2)
  }
  const absRoot = path.resolve(root)
  const pages = JSON.parse(fs.readFileSync(path.join(absRoot, 'app.json'), 'utf8')).pages || []
  const results = []
  const wxss = compileWxss(absRoot, 'app')
  if (wxss) results.push({ file: 'app.wxss', page: 'app', kind: 'wxss', ...wxss })
  for (const page of pages) {
    results.push({ file: page + '.wxml', page, kind: 'wxml', ...compileWxml(absRoot, page) })
    const style = compileWxss(absRoot, page)
    if (style) results.push({ file: page + '.wxss', page, kind: 'wxss', ...style })
  }
  process.stdout.write(JSON.stringify({ pages, results }) + '\n')
}

main()
