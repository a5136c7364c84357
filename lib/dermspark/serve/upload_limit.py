"""A cap on request bodies, enforced while the body arrives, before anything parses it.

FastAPI spools multipart uploads to disk whatever their size, so a cap checked in the endpoint
would come after the whole upload had been received. This middleware answers 413 at once when
Content-Length is over the cap, and stops reading a body sent without one (chunked) as soon as
it passes the cap.
"""

import json

# Multipart framing (boundaries, part headers) around the file itself.
FRAMING_BYTES = 16 * 1024


async def send_too_large(send, limit_bytes: int) -> None:
    body = json.dumps(
        {"detail": {"reason": "too_large", "message": f"the upload is over the limit of {limit_bytes} bytes"}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class UploadLimit:
    """Pure ASGI middleware: `app.add_middleware(UploadLimit, limit_bytes=N)`; N is the file's
    cap, and the body may carry FRAMING_BYTES more."""

    def __init__(self, app, limit_bytes: int):
        self.app, self.limit_bytes = app, limit_bytes
        self.body_limit = limit_bytes + FRAMING_BYTES

    # C901: the ASGI protocol's message kinds, handled in one place
    async def __call__(self, scope, receive, send):  # noqa: C901
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.body_limit:
            await send_too_large(send, self.limit_bytes)
            return
        state = {"received": 0, "over": False, "answered": False}

        async def limited_receive():
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.body_limit:
                    state["over"] = True
                    # The app sees a client that went away, and whatever it answers is replaced.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not state["over"]:
                await send(message)
            elif not state["answered"]:
                state["answered"] = True
                await send_too_large(send, self.limit_bytes)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["answered"]:
            await send_too_large(send, self.limit_bytes)
