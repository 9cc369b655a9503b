"""What a failed PutMetricData means for the data it carried: retry, hold or reject."""
from __future__ import annotations

from typing import Literal

from botocore import exceptions as botocore_exceptions

ErrorKind = Literal["retry", "hold", "reject"]

_RETRY_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
        "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
        "SlowDown", "PriorRequestNotComplete", "RequestTimeout", "RequestTimeoutException",
        "InternalFailure", "InternalError", "InternalServiceError", "InternalServiceFault",
        "ServiceUnavailable", "ServiceUnavailableException",
    }
)
# Not about the data: dropping it would not help and waiting a few seconds neither.
_HOLD_CODES = frozenset(
    {
        "AccessDenied", "AccessDeniedException", "AuthFailure", "ExpiredToken", "ExpiredTokenException",
        "IncompleteSignature", "InvalidClientTokenId", "InvalidSignatureException",
        "MissingAuthenticationToken", "OptInRequired", "RequestExpired", "RequestTimeTooSkewed",
        "SignatureDoesNotMatch", "UnrecognizedClientException",
    }
)


def classify_error(exc: BaseException) -> ErrorKind:
    """What a failed PutMetricData means for the data it carried.

    - ``"retry"``: transient (throttling, HTTP 429, 5xx, connection errors): back off and retry.
    - ``"hold"``: not about the data and not quickly transient (credentials,
      permissions, clock skew, unknown errors): stop this flush, keep the data.
    - ``"reject"``: CloudWatch refused this request's data (e.g. ``InvalidParameterValue``,
      other 4xx): retrying can never succeed, so the request is dropped and counted.
    """
    if isinstance(exc, botocore_exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _RETRY_CODES or status == 429 or status >= 500:
            return "retry"
        if code in _HOLD_CODES or status in (401, 403):
            return "hold"
        if 400 <= status < 500:
            return "reject"
        return "hold"
    if isinstance(exc, (botocore_exceptions.HTTPClientError, botocore_exceptions.ConnectionError)):
        return "retry"
    if isinstance(exc, botocore_exceptions.ParamValidationError):
        return "reject"  # client-side validation of this very request
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "retry"
    return "hold"


def describe_error(exc: BaseException) -> str:
    """One line for people: the error code and message."""
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
