"""The hub's own errors; the API turns each into one HTTP status.

HubError
 ├── InvalidInputError   422  the input names something wrong
 ├── NotFoundError       404  an id or identity that does not exist
 ├── ConflictError       409  valid, but clashes with the current state
 └── ForbiddenError      403  the agent's role may not do this
"""


class HubError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInputError(HubError):
    status_code = 422


class NotFoundError(HubError):
    status_code = 404


class ConflictError(HubError):
    status_code = 409


class ForbiddenError(HubError):
    status_code = 403
