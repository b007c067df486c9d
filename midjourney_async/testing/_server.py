"""The HTTP front: one catch-all aiohttp handler that counts, injects faults, authenticates
and dispatches to the profile's API; plus ``/files/`` and the ``/_emulator/`` endpoints.

Routing is done here rather than by aiohttp's router so every profile can answer unknown
paths in its own shape and every request gets a route name for stats and fault rules.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import _http
from ._faults import FaultRule
from ._files import file_bytes
from ._quirks import LINK_GONE, token_of

if TYPE_CHECKING:
    from ._emulator import Emulator
    from ._ohmygpt_api import OhmygptApi
    from ._proxy_api import ProxyApi


class HttpFront:
    """Turns aiohttp requests into API calls for one :class:`Emulator`."""

    def __init__(self, emu: Emulator, api: ProxyApi | OhmygptApi) -> None:
        self.emu = emu
        self.api = api
        self.profile = emu.profile_info
        self.stats = emu.stats

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The single aiohttp handler for every path."""
        path = request.path
        if path.startswith("/_emulator/"):
            return self._internal(request)
        if path.startswith("/files/"):
            return await self._serve_file(request)
        call = self.api.resolve(request)
        if call is None:
            self.stats.requests["<unknown>"] += 1
            return self._respond(_http.not_found(self.profile, request.method, path))
        self.stats.requests[call.route] += 1
        # The whole body is read before any fault: drop_after_read must see a complete request.
        call.body = await request.read()
        fault = self.emu.faults.pick(call.route)
        if fault is not None:
            self.stats.faults[fault.kind] += 1
            if fault.kind == "latency":
                await asyncio.sleep(fault.latency)
            elif not fault.effect_first:
                return self._respond(self._fault_reply(fault, path))
        refused = None
        if call.needs_auth:
            refused = _http.check_auth(self.profile, request.headers, self.emu.api_key)
            if refused is not None:
                self.stats.auth_failures += 1
        reply = refused if refused is not None else await call.handler(call)
        if fault is not None and fault.kind != "latency":
            if fault.kind == "drop_after_read":
                # The effect happened; the client never learns it. aiohttp discards the
                # response below because the transport is already closing.
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)
            reply = self._fault_reply(fault, path, reply)
        return self._respond(reply)

    def _fault_reply(
        self, fault: FaultRule, path: str, real: _http.Reply | None = None
    ) -> _http.Reply:
        if fault.body is not None:
            return _http.Reply(fault.status, fault.body)
        match fault.kind:
            case "429":
                return _http.rate_limited(self.profile, fault.retry_after, fault.message)
            case "trueai_error_shape":
                return _http.trueai_error(fault.message or "今日绘图次数已达上限，请明天再试")
            case "malformed" | "truncated":
                base = real if real is not None else _http.json_reply({"code": 1})
                body = base.body or b"{}"
                if fault.kind == "malformed":
                    body = body[:-1] + b",}"  # a trailing comma: invalid in every parser
                else:
                    body = body[: max(1, len(body) // 2)]
                return _http.Reply(base.status, body, "application/json", dict(base.headers))
            case _:
                return _http.status_fault(self.profile, fault.status, path, fault.message)

    def _respond(self, reply: _http.Reply) -> web.Response:
        self.stats.responses[reply.status] += 1
        resp = web.Response(status=reply.status, body=reply.body, headers=reply.headers or None)
        if reply.content_type is not None:
            resp.headers["Content-Type"] = reply.content_type
        return resp

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests["files"] += 1
        fault = self.emu.faults.pick("files")
        if fault is not None:
            self.stats.faults[fault.kind] += 1
            if fault.kind != "latency":
                return self._respond(self._fault_reply(fault, request.path))
            await asyncio.sleep(fault.latency)
        spec = self.emu.files.get(request.path.removeprefix("/files/"))
        if spec is None:
            return self._respond(_http.text_reply("Not Found", 404))
        if self.emu.link_gone(token_of(request.query)):
            status = self.emu.quirks.image_link_status
            return self._respond(_http.text_reply(LINK_GONE, status))
        data, content_type = file_bytes(spec)
        return self._respond(_http.Reply(200, data, content_type))

    def _internal(self, request: web.Request) -> web.Response:
        name = request.path.removeprefix("/_emulator/")
        if name == "health":
            emu = self.emu
            body: dict[str, Any] = {
                "status": "ok",
                "profile": emu.profile,
                "speed": emu.speed,
                "tasks": len(emu.tasks),
                "running": emu.running,
                "waiting": emu.waiting,
            }
            return web.Response(body=_http.encode(body), content_type="application/json")
        if name == "stats":
            return web.Response(
                body=_http.encode(self.stats.to_dict()), content_type="application/json"
            )
        return web.Response(status=404, text="unknown emulator endpoint")
