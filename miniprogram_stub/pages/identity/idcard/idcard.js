const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const accounts = require('../../../utils/accounts')
const subscribe = require('../../../utils/subscribe')

const SIDES = {
  front: { kind: 'id_front', pathKey: 'frontPath', idKey: 'frontUploadId', label: '人像面' },
  back: { kind: 'id_back', pathKey: 'backPath', idKey: 'backUploadId', label: '国徽面' }
}

const ID_PATTERN = /^\d{17}[\dX]$/

// 更新身份证（renew=1，账户因身份证过期受限时从账户页来）：同一个人的新证，过期的新证另有说明。
const RENEWAL_TEXTS = {
  ID_EXPIRED: '这张身份证也已过期，请拍摄本人新领取的、有效期内的身份证',
  IDENTITY_FIXED: '请拍摄本人的新身份证：号码须与开户时一致'
}

function chooseImage() {
  return new Promise((resolve, reject) => {
    wx.chooseMedia({
      count: 1,
      mediaType: ['image'],
      sourceType: ['camera', 'album'],
      sizeType: ['compressed'],
      success(res) {
        const file = res && res.tempFiles && res.tempFiles[0]
        if (file && file.tempFilePath) resolve(file.tempFilePath)
        else reject(new api.ApiError({ status: 0, code: 'NO_IMAGE', message: '未选择照片' }))
      },
      fail(err) {
        const cancelled = /cancel/i.test((err && err.errMsg) || '')
        reject(new api.ApiError({ status: 0, code: cancelled ? 'CANCELLED' : 'NO_IMAGE', message: cancelled ? '已取消选择' : '无法读取照片，请重试' }))
      }
    })
  })
}

Page({
  data: {
    frontPath: '',
    backPath: '',
    // 上传 id 是后端返回的整数（POST /api/v1/identity/id-card 只接受整数），未上传为 null。
    frontUploadId: null,
    backUploadId: null,
    uploadingSide: '',
    name: '',
    idNumber: '',
    submitting: false,
    result: null,
    error: null,
    renew: false
  },

  /** options: {renew?: '1', account_id?}：更新过期的身份证（之后还需人脸核验，限制才解除）。 */
  onLoad(options) {
    options = options || {}
    this.accountId = accounts.parseId(options.account_id)
    if (options.renew === '1') this.setData({ renew: true })
  },

  chooseFront() {
    return this.chooseAndUpload('front')
  },

  chooseBack() {
    return this.chooseAndUpload('back')
  },

  /** 选择一张照片并上传为 id_front / id_back，返回上传 id。 */
  chooseAndUpload(side) {
    const conf = SIDES[side]
    if (!conf || this.data.uploadingSide) return Promise.resolve(null)
    return chooseImage().then((path) => {
      const update = { uploadingSide: side, error: null, result: null }
      update[conf.pathKey] = path
      update[conf.idKey] = null
      this.setData(update)
      return api.upload({
        url: '/api/v1/uploads',
        filePath: path,
        name: 'file',
        formData: { kind: conf.kind }
      })
    }).then((body) => {
      const update = { uploadingSide: '' }
      update[conf.idKey] = body.id
      this.setData(update)
      return body.id
    }).catch((err) => {
      this.setData({ uploadingSide: '' })
      if (err.code === 'CANCELLED') return null
      return this.fail(err)
    })
  },

  onNameInput(e) {
    this.setData({ name: String(e.detail.value || '').trim() })
  },

  onIdNumberInput(e) {
    this.setData({ idNumber: String(e.detail.value || '').replace(/\s+/g, '').toUpperCase() })
  },

  validate() {
    const d = this.data
    if (!Number.isInteger(d.frontUploadId)) return '请上传身份证人像面照片'
    if (!Number.isInteger(d.backUploadId)) return '请上传身份证国徽面照片'
    if (!d.name) return '请输入姓名'
    if (!ID_PATTERN.test(d.idNumber)) return '请输入18位身份证号码'
    return ''
  },

  /** 提交 OCR 比对：POST /api/v1/identity/id-card。 */
  onSubmit() {
    if (this.data.submitting) return Promise.resolve(null)
    const problem = this.validate()
    if (problem) {
      wx.showToast({ title: problem, icon: 'none' })
      this.setData({ error: { code: 'FORM_INVALID', message: problem, field: null } })
      return Promise.resolve(null)
    }
    this.setData({ submitting: true, error: null, result: null })
    // 更新证件时，在点击的同步部分请求“证件到期”提醒的订阅（新证件到期前一个月提醒），用户答复后再提交。
    const send = () => api.request({
      url: '/api/v1/identity/id-card',
      method: 'POST',
      data: {
        front_upload_id: this.data.frontUploadId,
        back_upload_id: this.data.backUploadId,
        name: this.data.name,
        id_number: this.data.idNumber
      }
    })
    return (this.data.renew ? subscribe.ask('renewal').then(send) : send()).then((body) => {
      this.setData({ submitting: false, result: body })
      if (body.verified) wx.showToast({ title: '身份证核验通过', icon: 'success' })
      return body
    }).catch((err) => {
      this.setData({ submitting: false })
      return this.fail(err)
    })
  },

  fail(err) {
    const message = errors.showFriendlyError(err, this.data.renew ? RENEWAL_TEXTS : undefined)
    this.setData({ error: { code: err.code, message, field: err.field || null } })
    return null
  },

  goNext() {
    wx.navigateTo({ url: this.data.renew ? accounts.renewalUrl('face', this.accountId) : '/pages/identity/face/face' })
  }
})
