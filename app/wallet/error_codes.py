"""The wallet's business error codes (see app.core.error_codes)."""
from enum import StrEnum


class WalletErrorCode(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    DEPOSIT_LIMIT_EXCEEDED = "deposit_limit_exceeded"
