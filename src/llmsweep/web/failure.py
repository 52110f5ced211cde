"""Why a run operation did not do what was asked: an exit status of `remote` (which the API
maps to an HTTP status) and a message for the page, with any extra JSON fields."""

from __future__ import annotations

BAD, REFUSED, MISSING, CONFLICT = 2, 3, 4, 5  # 400, 403, 404, 409 in the API


class Failure(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.extra = status, extra
