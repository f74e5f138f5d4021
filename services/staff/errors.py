"""The staff console's expected failures, typed, with stable codes and Chinese messages."""

from __future__ import annotations

from core.errors import AppError


class LoginFailed(AppError):
    """Wrong username, password or TOTP code, a replayed code, or a disabled member: one answer for all,
    so a guesser learns nothing about which part was wrong."""

    status = 401
    code = "STAFF_LOGIN_FAILED"
    message = "用户名、密码或动态验证码错误"


class LoginLocked(AppError):
    status = 429
    code = "STAFF_LOCKED"

    def __init__(self, retry_after_s: int) -> None:
        minutes = max(1, -(-retry_after_s // 60))
        super().__init__(f"登录失败次数过多，请 {minutes} 分钟后再试", headers={"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


class StaffNotFound(AppError):
    status = 404
    code = "STAFF_NOT_FOUND"
    message = "员工不存在"


class StaffExists(AppError):
    status = 409
    code = "STAFF_EXISTS"
    message = "该用户名已存在"


class BadSearch(AppError):
    """A console customer search whose input is not what its kind needs (length, digits)."""

    status = 400
    code = "STAFF_BAD_SEARCH"
    message = "查询条件格式不正确"


class CustomerNotFound(AppError):
    status = 404
    code = "STAFF_CUSTOMER_NOT_FOUND"
    message = "客户不存在"


class BadReveal(AppError):
    """A reveal naming no field the page offers, or without a reason of 4 to 200 characters."""

    status = 400
    code = "STAFF_BAD_REVEAL"
    message = "请选择要查看的信息并填写 4 到 200 个字符的理由"
