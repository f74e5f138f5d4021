"""Typed errors with a stable code, a status and a Chinese display message.

Every error the API returns is one of these, rendered by ``app.errors`` as
``{"error": {"code", "message", "field"?}}``. Codes are the contract; messages are for display.
"""

from __future__ import annotations


class AppError(Exception):
    status: int = 400
    code: str = "BAD_REQUEST"
    message: str = "请求有误"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.field = field
        self.headers = headers or {}
        super().__init__(f"{self.code}: {self.message}")

    def __reduce__(self):
        # Errors cross process boundaries (contracts are signed in worker processes); the default
        # pickling would rebuild them from the formatted text and lose the code, status and field.
        return (_rebuild, (type(self), self.message, self.code, self.status, self.field, self.headers))

    def body(self) -> dict:
        err: dict = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        return {"error": err}


def _rebuild(cls, message, code, status, field, headers):
    return cls(message, code=code, status=status, field=field, headers=headers)


class ValidationFailed(AppError):
    status = 422
    code = "VALIDATION_ERROR"
    message = "请求参数不正确"


class Unauthorized(AppError):
    status = 401
    code = "UNAUTHORIZED"
    message = "请先登录"


class Forbidden(AppError):
    status = 403
    code = "FORBIDDEN"
    message = "无权执行此操作"


class NotFound(AppError):
    status = 404
    code = "NOT_FOUND"
    message = "资源不存在"


class Conflict(AppError):
    status = 409
    code = "CONFLICT"
    message = "请求与当前状态冲突"


class RateLimited(AppError):
    status = 429
    code = "RATE_LIMITED"
    message = "操作过于频繁，请稍后再试"


# What a 503 of ours promises: the outcome is unknown. The request may have taken effect (a commit whose
# answer was lost) or not; the caller retries with the same Idempotency-Key or out_trade_no and gets the
# first result if there was one. It never means "nothing was done".
OUTCOME_UNKNOWN = "处理结果未知，请稍后使用相同的请求重试"


class DatabaseUnavailable(AppError):
    """The database does not answer or cannot serve now (stopped, restarting, unreachable, a cluster node
    out of the Primary Component). Outcome unknown: retry the same request."""

    status = 503
    code = "DB_UNAVAILABLE"
    message = "服务暂时不可用，" + OUTCOME_UNKNOWN


class ConflictRetry(AppError):
    """A transaction kept conflicting with others on the same rows (a hot account) past ``atomic``'s
    tries. Its own code, so contention is told apart from an outage; the same promise: outcome unknown,
    retry the same request after ``Retry-After``."""

    status = 503
    code = "CONFLICT_RETRY"
    message = "业务繁忙，" + OUTCOME_UNKNOWN


class UpstreamUnavailable(AppError):
    status = 503
    code = "UPSTREAM_UNAVAILABLE"
    message = "外部服务暂时不可用，请稍后再试"


class ConfigError(Exception):
    """The process cannot start with this configuration; the message says what to change."""
