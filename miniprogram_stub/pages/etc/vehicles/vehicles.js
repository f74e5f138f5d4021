const api = require('../../../utils/api')
const errors = require('../../../utils/errors')
const etc = require('../../../utils/etc')

function localError(code) {
  return new api.ApiError({ status: 0, code, message: errors.MESSAGES[code] })
}

/** wx.showModal 的确认框 → Promise<boolean>（确认为 true）。 */
function confirm(title, content) {
  return new Promise((resolve) => {
    wx.showModal({
      title,
      content,
      success: (res) => resolve(!!(res && res.confirm)),
      fail: () => resolve(false)
    })
  })
}

Page({
  data: {
    loading: false,
    loaded: false,
    vehicles: [],
    colors: etc.COLORS,
    plate: '',
    color: 'blue',
    colorLabel: etc.COLOR_LABELS.blue,
    adding: false,
    removingId: null,
    error: null
  },

  onLoad() {
    this.colorChosen = false
    if (!api.isLoggedIn()) {
      wx.navigateTo({ url: '/pages/login/login' })
      return Promise.resolve(null)
    }
    return this.refresh()
  },

  /** 从绑定页回来：刷新（首次显示时 onLoad 的请求还在进行，不重复请求）。 */
  onShow() {
    if (!this.data.loaded || this.data.loading) return Promise.resolve(null)
    return this.refresh()
  },

  onPullDownRefresh() {
    return this.refresh().then((list) => {
      wx.stopPullDownRefresh()
      return list
    })
  },

  /** GET /api/v1/vehicles 与 GET /api/v1/etc-bindings（哪辆车已绑定 ETC 卡）。 */
  refresh() {
    this.setData({ loading: true, error: null })
    // 绑定列表查询失败不影响车辆列表：只是不显示绑定状态。
    const bindings = api.request({ url: '/api/v1/etc-bindings' }).then((body) => (body && body.bindings) || [], () => [])
    return Promise.all([api.request({ url: '/api/v1/vehicles' }), bindings]).then(([body, bound]) => {
      const list = (body && Array.isArray(body.vehicles)) ? body.vehicles : []
      const byVehicle = {}
      bound.filter((b) => b.status !== 'unbound').forEach((b) => { byVehicle[b.vehicle_id] = b })
      this.setData({ loading: false, loaded: true, vehicles: list.map((v) => etc.viewVehicle(v, byVehicle[v.id] || null)) })
      return list
    }).catch((err) => {
      this.setData({ loading: false })
      return this.fail(err)
    })
  },

  /**
   * 车牌输入：去掉空格与间隔点、字母转大写（'粤b d12345' → '粤BD12345'）。颜色跟随车牌的默认值，
   * 除非用户自己选过；8 位（新能源）车牌的颜色由车牌形状决定，选过的不相符的颜色也改回默认。
   */
  onPlateInput(e) {
    const plate = etc.normalisePlate(e && e.detail ? e.detail.value : '')
    let color = this.data.color
    if (!this.colorChosen || plate.length === 8 || !etc.colorFits(plate, color)) color = etc.suggestColor(plate)
    this.setData({ plate, color, colorLabel: etc.COLOR_LABELS[color] })
    return plate
  },

  onChooseColor(e) {
    const value = e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.value : ''
    if (!etc.COLOR_LABELS[value]) return
    this.colorChosen = true
    this.setData({ color: value, colorLabel: etc.COLOR_LABELS[value] })
  },

  /** 添加车辆：本地校验车牌与颜色，POST /api/v1/vehicles {plate_number, plate_color}（同一辆车再登记得到原来那条）。 */
  onAdd() {
    if (this.data.adding) return Promise.resolve(null)
    const plate = etc.normalisePlate(this.data.plate)
    const problem = etc.plateProblem(plate, this.data.color)
    if (problem) return Promise.resolve(this.fail(localError(problem), problem === 'PLATE_COLOR_MISMATCH' ? 'plate_color' : 'plate_number'))
    const known = this.data.vehicles.map((v) => v.id)
    this.setData({ adding: true, error: null })
    return api.request({
      url: '/api/v1/vehicles',
      method: 'POST',
      data: { plate_number: plate, plate_color: this.data.color }
    }).then((vehicle) => {
      this.colorChosen = false
      this.setData({ adding: false, plate: '', color: 'blue', colorLabel: etc.COLOR_LABELS.blue })
      wx.showToast({ title: known.indexOf(vehicle.id) >= 0 ? '该车辆已登记' : '添加成功', icon: 'success' })
      return this.refresh().then(() => vehicle)
    }).catch((err) => {
      this.setData({ adding: false })
      return this.fail(err)
    })
  },

  /** 删除车辆（确认后 DELETE /api/v1/vehicles/{id}）；已绑定 ETC 卡的车辆被拒绝（VEHICLE_BOUND）。 */
  onRemove(e) {
    const id = Number(e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.id : NaN)
    const vehicle = this.data.vehicles.find((v) => v.id === id)
    if (!vehicle || this.data.removingId) return Promise.resolve(null)
    return confirm('删除车辆', '确定删除 ' + vehicle.plate + '？').then((ok) => {
      if (!ok) return null
      this.setData({ removingId: id, error: null })
      return api.request({ url: '/api/v1/vehicles/' + encodeURIComponent(id), method: 'DELETE' }).then(() => {
        this.setData({ removingId: null })
        wx.showToast({ title: '已删除', icon: 'success' })
        return this.refresh().then(() => true)
      }).catch((err) => {
        this.setData({ removingId: null })
        return this.fail(err)
      })
    })
  },

  /** 为这辆车绑定 ETC 卡，或查看它已有的绑定。 */
  goBind(e) {
    const dataset = (e && e.currentTarget && e.currentTarget.dataset) || {}
    if (dataset.binding) {
      wx.navigateTo({ url: '/pages/etc/binding/binding?id=' + dataset.binding })
      return
    }
    wx.navigateTo({ url: dataset.id ? '/pages/etc/bind/bind?vehicle_id=' + dataset.id : '/pages/etc/bind/bind' })
  },

  goHome() {
    wx.reLaunch({ url: '/pages/index/index' })
  },

  fail(err, field) {
    const message = errors.showFriendlyError(err)
    this.setData({ error: { code: err.code, message, field: err.field || field || null } })
    return null
  }
})
