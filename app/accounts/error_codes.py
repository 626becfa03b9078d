"""The business error codes of accounts (see app.core.error_codes)."""
from enum import StrEnum


class AccountErrorCode(StrEnum):
    USERNAME_TAKEN = "username_taken"
    EMAIL_TAKEN = "email_taken"
    WRONG_PASSWORD = "wrong_password"
