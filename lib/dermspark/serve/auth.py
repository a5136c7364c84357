"""An optional bearer token for the service: with one configured, every request but the health
check and the upload page itself must carry `Authorization: Bearer TOKEN`, compared in constant
time. The token comes from a file (`--auth-token-file`, read once at start) or the environment
(DERMSPARK_API_TOKEN), never from a flag, so it is not in the process list or the settings
saved beside outputs, and it is never logged."""

import hmac
import os

from starlette.responses import JSONResponse

from dermspark import DermsparkError

ENVIRONMENT = "DERMSPARK_API_TOKEN"
# The page is static HTML holding no data: a browser must load it before it can ask for a token.
OPEN_PATHS = ("/health", "/")


def configured_token(token_file: str | None) -> str | None:
    """The token the service requires, or None when it requires none."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as error:
            raise DermsparkError(f"--auth-token-file {token_file}: {error.strerror}") from None
        if not token:
            raise DermsparkError(f"--auth-token-file {token_file} is empty")
        return token
    token = os.environ.get(ENVIRONMENT, "").strip()
    return token or None


class BearerToken:
    """ASGI middleware: 401 without the configured token."""

    def __init__(self, app, token: str):
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        refused = JSONResponse(
            {"detail": {"reason": "unauthorized", "message": "this service needs 'Authorization: Bearer TOKEN'"}},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await refused(scope, receive, send)
