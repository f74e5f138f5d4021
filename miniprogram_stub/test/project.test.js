/**
 * The project's declarations (no backend needed): the base library it targets and the files of its pages.
 */
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const shim = require('./wx-shim')

const ROOT = shim.ROOT
const readJson = (rel) => JSON.parse(fs.readFileSync(path.join(ROOT, rel), 'utf8'))

// wx.requestFacialVerify (WeChat face verification 2.0) needs base library 3.8.12 or later.
const FACE_MIN_LIB = '3.8.12'

test('project.config.json declares a base library with wx.requestFacialVerify (>= 3.8.12)', () => {
  const lib = readJson('project.config.json').libVersion
  assert.match(String(lib), /^\d+\.\d+\.\d+$/, 'libVersion is a version: ' + lib)
  assert.ok(shim.compareVersion(lib, FACE_MIN_LIB) >= 0, 'libVersion ' + lib + ' is lower than ' + FACE_MIN_LIB + ' (face verification 2.0)')
  assert.equal(shim.MIN_SDK.requestFacialVerify, FACE_MIN_LIB, 'the shim emulates the same minimum')
  assert.equal(require('../utils/face').MIN_BASE_LIBRARY, FACE_MIN_LIB)
})

test('the shim emulates the declared base library, so the face API is available in the journey', () => {
  shim.install({ baseUrl: 'http://127.0.0.1:9' })
  shim.reset()
  assert.equal(shim.state.sdkVersion, readJson('project.config.json').libVersion)
  assert.equal(shim.wx.canIUse('requestFacialVerify'), true)
  assert.equal(require('../utils/face').isSupported(), true)
})

test('every page of app.json has its .js, .wxml and .json', () => {
  const pages = readJson('app.json').pages
  assert.ok(pages.length >= 6)
  for (const route of pages) {
    for (const ext of ['.js', '.wxml', '.json']) assert.ok(fs.existsSync(path.join(ROOT, route + ext)), route + ext)
  }
  assert.equal(pages[0], 'pages/index/index', 'the home page comes first')
})
