"""Client SDK for the bank's partner open API ``/open/v1`` (see README.md)."""

from ._version import __version__
from .client import AsyncPartnerClient, Category, PartnerClient
from .errors import NetworkError, OpenApiError, OpenBankError, ProtocolError, SignatureError
from .models import (
    CHINA_STANDARD_TIME,
    STATEMENT_COLUMNS,
    Debit,
    Notification,
    Refund,
    StatementRow,
    china_today,
    parse_statement,
)
from .notifications import parse_notification
from .signing import (
    canonical_query,
    request_string,
    response_string,
    sign,
    sign_request,
    verify_notification,
    verify_response,
)

__all__ = [
    "CHINA_STANDARD_TIME",
    "STATEMENT_COLUMNS",
    "AsyncPartnerClient",
    "Category",
    "Debit",
    "NetworkError",
    "Notification",
    "OpenApiError",
    "OpenBankError",
    "PartnerClient",
    "ProtocolError",
    "Refund",
    "SignatureError",
    "StatementRow",
    "__version__",
    "canonical_query",
    "china_today",
    "parse_notification",
    "parse_statement",
    "request_string",
    "response_string",
    "sign",
    "sign_request",
    "verify_notification",
    "verify_response",
]
