"""The identity domain's errors: stable codes the mini-program maps to its messages."""

from core.errors import AppError, Conflict, NotFound, RateLimited


class IdNumberInvalid(AppError):
    status, code, message = 422, "ID_NUMBER_INVALID", "身份证号码不正确"


class IdMismatch(AppError):
    status, code, message = 422, "ID_MISMATCH", "身份证照片信息与填写的姓名或号码不一致"


class IdExpired(AppError):
    status, code, message = 422, "ID_EXPIRED", "身份证已过有效期"


class UnderAge(AppError):
    status, code, message = 422, "UNDER_AGE", "未达到开户的最低年龄"


class OcrUnreadable(AppError):
    status, code, message = 422, "OCR_UNREADABLE", "无法识别身份证照片，请重新拍摄"


class TooManyAttempts(RateLimited):
    code, message = "TOO_MANY_ATTEMPTS", "今日尝试次数已达上限，请明天再试"


class IdentityFixed(Conflict):
    """The user holds an account or has signed a contract: their ID card can be renewed, never swapped
    for another person's."""

    code, message = "IDENTITY_FIXED", "您已开户或签署协议，身份信息不能更换为他人的身份证"


class IdentityNameChanged(Conflict):
    """A holder's renewed ID card must carry the name their accounts and agreements were made in; a change
    of name is recorded at a branch, with the documents that prove it."""

    code, message = "IDENTITY_NAME_CHANGED", "姓名与开户时登记的不一致；如已更名，请到营业网点办理"


class IdCardRequired(Conflict):
    code, message = "ID_CARD_REQUIRED", "请先完成身份证验证"


class FaceVerificationInvalid(AppError):
    status, code, message = 422, "FACE_VERIFICATION_INVALID", "人脸核验无效，请重新核验"


class FaceVerificationStale(AppError):
    status, code, message = 422, "FACE_VERIFICATION_STALE", "请在签署前 5 分钟内完成人脸核验"


class FaceVerificationUsed(AppError):
    status, code, message = 422, "FACE_VERIFICATION_USED", "该人脸核验已被使用，请重新核验"


class FaceVerificationPending(AppError):
    """The verification's result was never fetched (or the user has not finished it): not a pass yet."""

    status, code, message = 422, "FACE_VERIFICATION_PENDING", "人脸核验结果尚未确认，请完成人脸核验后重试"


class FaceVerificationNotFound(NotFound):
    code, message = "FACE_VERIFICATION_NOT_FOUND", "人脸核验记录不存在"


class FaceVerificationFailed(AppError):
    """WeChat refused the result query (e.g. an expired or unknown verify_id on its side)."""

    status, code, message = 422, "FACE_VERIFICATION_FAILED", "人脸核验结果查询失败，请重新核验"


class UploadNotFound(NotFound):
    code, message = "UPLOAD_NOT_FOUND", "上传的文件不存在"


class UploadKindMismatch(AppError):
    status, code, message = 422, "UPLOAD_KIND_MISMATCH", "上传的文件不是所需的类型"


class PhoneInvalid(AppError):
    status, code, message = 422, "PHONE_INVALID", "预留手机号格式不正确"


class ImageTooLarge(AppError):
    status, code, message = 422, "IMAGE_TOO_LARGE", "图片尺寸过大，请压缩后重新上传"


class CardNumberInvalid(AppError):
    status, code, message = 422, "CARD_NUMBER_INVALID", "银行卡号不正确"


class CardMismatch(AppError):
    status, code, message = 422, "CARD_MISMATCH", "银行卡信息与本人身份信息或预留手机号不一致"


class CardNotFound(AppError):
    status, code, message = 422, "CARD_NOT_FOUND", "未查询到该银行卡"


class CardClassNotAllowed(AppError):
    status, code, message = 422, "CARD_CLASS_NOT_ALLOWED", "请绑定本人一类借记卡或信用卡"


class FileTooLarge(AppError):
    status, code, message = 413, "FILE_TOO_LARGE", "文件过大"


class UnsupportedFileType(AppError):
    # 422, not 415: the request's media type (multipart) is fine; the file inside is not an image.
    status, code, message = 422, "UNSUPPORTED_FILE_TYPE", "仅支持 JPEG 或 PNG 图片"
