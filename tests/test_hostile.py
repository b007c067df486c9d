"""Hostile input: random and mutated bodies, forged callbacks, dangerous downloads.

Every decoder is fed random JSON, task-shaped JSON with wrong types and
extreme values, and byte-mutated real samples: nothing but the library's own
errors may escape (``DecodeError`` from the pure decoders; the typed error
tree from the dialects' response parsers). Each guard of the webhook receiver
and of downloads has a test that fails if the guard is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mj_support import KEY, LOCAL_HOSTS, Emulated, RecordingServer, Reply, sample_bytes

from midjourney_async import (
    ConnectError,
    DecodeError,
    DownloadRefused,
    DownloadTooLarge,
    MidjourneyError,
    MidjourneySession,
    RetryPolicy,
    Task,
    TaskHandle,
    TaskStatus,
    TransportError,
    WebhookConfig,
    parse_notification,
)
from midjourney_async._dialects import OhMyGPTDialect, ProxyDialect
from midjourney_async._dialects._json import decode_any
from midjourney_async._dialects.proxy import decode_task, decode_task_list, task_from_obj
from midjourney_async._http import HttpResponse
from midjourney_async.testing import Emulator, FaultRule

FAST = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- strategies -------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 1e400, 0.5, 16e15, 2**63, 2**64, -(2**63) - 1])
    | st.text(max_size=12)
    | st.sampled_from(["", "inf", "-inf", "nan", "NaN", "1e999", "0001-01-01", "9999-12-31T23:59",
                       "100%", "%", "-5%", "999999999999%", "SUCCESS", "MODAL", "null"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
TASK_KEYS = [
    "id", "taskId", "status", "action", "progress", "prompt", "promptEn", "description",
    "state", "submitTime", "startTime", "finishTime", "imageUrl", "imageUrls", "videoUrl",
    "videoUrls", "buttons", "actions", "failReason", "properties", "parentId", "imageDcUrl",
    "imageS3Url", "code", "result", "statusCode", "data", "message", "success",
    "numberOfQueues",
]
task_like = st.dictionaries(st.sampled_from(TASK_KEYS), json_values, max_size=10)
envelopes = st.dictionaries(st.sampled_from(TASK_KEYS), json_values | task_like, max_size=6)


def dumps(value: Any) -> bytes:
    # allow_nan: NaN/Infinity literals are not JSON, which is hostile input too.
    return json.dumps(value, allow_nan=True).encode()


bodies = (
    st.binary(max_size=64)
    | json_values.map(dumps)
    | task_like.map(dumps)
    | envelopes.map(dumps)
    | st.lists(task_like, max_size=4).map(dumps)
)

SAMPLES = [
    "proxy-fetch-imagine-success.json",
    "proxy-fetch-video-success.json",
    "proxy-list-by-condition.json",
    "proxy-submit-success.json",
    "ohmygpt-query-success.json",
]


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    data = bytearray(sample_bytes(draw(st.sampled_from(SAMPLES))))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        how = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if how == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif how == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 20))]
        elif how == "insert":
            data[pos:pos] = draw(st.sampled_from([b"1e400", b"null", b"[", b"}", b'"', b"\xff",
                                                  b"-0", b"NaN", b"{}", b"[]"]))
        else:
            del data[pos:]
    return bytes(data)


@st.composite
def mutated_fields(draw: st.DrawFn) -> bytes:
    """A real sample with some of its fields replaced by hostile values."""
    obj = json.loads(sample_bytes(draw(st.sampled_from(SAMPLES))))
    target = obj[0] if isinstance(obj, list) and obj else obj
    if isinstance(target, dict) and isinstance(target.get("data"), dict):
        target = target["data"]
    if isinstance(target, dict):
        for key in draw(st.lists(st.sampled_from(TASK_KEYS), max_size=5)):
            target[key] = draw(json_values)
    return dumps(obj)


any_body = bodies | mutated_samples() | mutated_fields()


def response(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(status, body, {"Retry-After": "1"}, lambda text: text)


# -- decoders ---------------------------------------------------------------


@FAST
@given(any_body)
def test_pure_decoders_raise_only_decode_error(body: bytes) -> None:
    for decode in (decode_task, decode_task_list, decode_any):
        with contextlib.suppress(DecodeError):
            decode(body)
    for dialect in ("proxy", "ohmygpt"):
        try:
            task = parse_notification(body, dialect)
        except DecodeError:
            continue
        assert isinstance(task, Task) and isinstance(task.id, str) and task.id


@FAST
@given(json_values | task_like)
def test_task_from_obj_raises_only_decode_error(obj: Any) -> None:
    try:
        task = task_from_obj(obj)
    except DecodeError:
        return
    assert isinstance(task.status, str)
    for t in (task.submit_time, task.start_time, task.finish_time):
        assert t is None or isinstance(t, int)


@FAST
@given(any_body, st.sampled_from([200, 200, 200, 204, 400, 401, 404, 429, 500, 503]))
def test_dialect_parsers_raise_only_typed_errors(body: bytes, status: int) -> None:
    resp = response(body, status)
    proxy, omg = ProxyDialect(), OhMyGPTDialect()
    calls: list[Callable[[], object]] = [
        lambda: proxy.parse_submit("imagine", resp),
        lambda: proxy.parse_submit("upload-discord-images", resp),
        lambda: proxy.parse_fetch("1", resp),
        lambda: proxy.parse_list(resp),
        lambda: proxy.parse_image_seed("1", resp),
        lambda: omg.parse_submit("imagine", resp),
        lambda: omg.parse_fetch("1", resp),
    ]
    for call in calls:
        with contextlib.suppress(MidjourneyError):
            call()


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "1", "submitTime": 1e400}',
        b'{"id": "1", "finishTime": "inf"}',
        b'{"id": "1", "startTime": "nan"}',
        b'{"id": "1", "submitTime": "0001-01-01"}',
        b'{"id": "1", "submitTime": 1e300}',
        b'{"id": "1", "submitTime": -1e300}',
        b'{"id": "1", "submitTime": 99999999999999999999999}',
    ],
)
def test_extreme_timestamps_never_crash(body: bytes) -> None:
    # A number JSON cannot hold (1e400) makes the body unreadable: a DecodeError. Any
    # other odd time is dropped and the task kept.
    for parse in (decode_task, lambda b: parse_notification(b.replace(b'"id"', b'"taskId"'),
                                                            "ohmygpt")):
        try:
            task = parse(body)
        except DecodeError:
            assert b"1e400" in body
            continue
        assert task is not None and task.id == "1"
        for t in (task.submit_time, task.start_time, task.finish_time):
            assert t is None or isinstance(t, int)


@pytest.mark.parametrize("result", [b"1e400", b"-1e400", b"NaN", b"1.5e300"])
def test_submit_with_absurd_numeric_id_is_a_decode_error_or_an_id(result: bytes) -> None:
    body = b'{"code": 1, "description": "ok", "result": ' + result + b"}"
    try:
        got = ProxyDialect().parse_submit("imagine", response(body))
    except DecodeError:
        return
    assert got.task_id and got.task_id.isdigit()


@pytest.mark.parametrize("actions", [5, 1.5, True, "U1", {"customId": "x"}])
def test_ohmygpt_odd_actions_never_crash(actions: Any) -> None:
    body = json.dumps({"taskId": 7, "status": "SUCCESS", "actions": actions}).encode()
    assert parse_notification(body, "ohmygpt").id == "7"


# -- the webhook receiver ---------------------------------------------------

NEVER = 3600.0


async def post(url: str, body: bytes, *, chunked: bool = False) -> int:
    async with aiohttp.ClientSession() as http:
        if chunked:

            async def gen() -> Any:
                for i in range(0, len(body), 1024):
                    yield body[i : i + 1024]

            data: Any = gen()
        else:
            data = body
        async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
            return r.status


async def held_task(emu: Emulator, mj: MidjourneySession, prompt: str) -> TaskHandle:
    """A task hung IN_PROGRESS, with the handle that keeps its state alive."""
    handle = await mj.imagine(prompt)
    await emu.wait_for(handle.id, "IN_PROGRESS")
    task = await handle.refresh()
    assert task.status is TaskStatus.IN_PROGRESS
    return handle


def forged(task_id: str, **extra: Any) -> bytes:
    return json.dumps(
        {"id": task_id, "status": "SUCCESS", "progress": "100%", "imageUrl": "http://evil/x.png",
         **extra}
    ).encode()


async def test_webhook_guards_reject_without_changing_state(emulated: Emulated) -> None:
    config = WebhookConfig(poll_interval=NEVER, max_body=2048)
    # The emulator's own callbacks are off: every callback the receiver sees is ours.
    async with emulated(emulator={"notify_hook_enabled": False}, webhook=config) as (emu, mj):
        emu.rules.never_finish("hold")
        held = await held_task(emu, mj, "hold on")
        before = held.task
        assert before is not None
        url = mj.webhook_url
        assert url is not None
        base, token = url.rsplit("/", 1)
        # In-progress callbacks (applied without a confirming fetch) are the real test:
        # were a guard missing, the forged 93% would move the task.
        sneaky = json.dumps({"id": before.id, "status": "IN_PROGRESS", "progress": "93%",
                             "imageUrl": "http://evil/x.png"}).encode()
        assert await post(f"{base}/{token[:-1]}x", sneaky) == 404  # wrong token
        assert await post(f"{base}/", sneaky) in (404, 405)  # no token
        padded = sneaky[:-1] + b"," + b'"pad": "' + b"x" * 4096 + b'"}'
        assert await post(url, padded) == 413  # oversized, with Content-Length
        assert await post(url, padded, chunked=True) == 413  # oversized, streamed
        assert await post(url, b"\xff\xfe not json") == 400
        assert await post(url, b"[]") == 400
        assert await post(url, forged("9999999999999999")) == 404  # not our task
        receiver = mj._webhook
        assert receiver is not None
        s = receiver.stats
        assert s.rejected_token >= 1
        assert (s.rejected_size, s.rejected_body, s.rejected_unknown) == (2, 2, 1)
        assert s.accepted == 0 and s.applied == 0
        after = mj.handle(before.id).task
        assert after == before
        assert mj._tracker.stats.snapshots_applied >= 1
        # The right token with a sane body is accepted: the test above was not vacuous.
        assert await post(url, sneaky) == 200
        assert mj.handle(before.id).task is not None
        assert mj.handle(before.id).task.progress == "93%"  # type: ignore[union-attr]


async def test_webhook_flood_of_terminal_claims_is_bounded(emulated: Emulated) -> None:
    config = WebhookConfig(poll_interval=NEVER, max_pending_confirms=3)
    async with emulated(
        emulator={"concurrency": None, "queue_size": None}, webhook=config
    ) as (emu, mj):
        emu.rules.never_finish("flood")
        tasks = [await held_task(emu, mj, f"flood {i}") for i in range(8)]
        # Confirming fetches hang for a while, so confirmations pile up.
        emu.faults.add(FaultRule("task/fetch", "latency", latency=2.0))
        url = mj.webhook_url
        assert url is not None
        codes = await asyncio.gather(*(post(url, forged(t.id)) for t in tasks))
        receiver = mj._webhook
        assert receiver is not None
        assert codes.count(200) == 3 and codes.count(503) == 5
        assert receiver.stats.rejected_busy == 5
        assert len(receiver._confirming) <= 3
        # A forged SUCCESS never reached a waiter: the server still says IN_PROGRESS.
        emu.faults.clear()
        for t in tasks:
            current = mj.handle(t.id).task
            assert current is not None and current.status is not TaskStatus.SUCCESS


async def test_forged_terminal_callback_is_confirmed_not_trusted(emulated: Emulated) -> None:
    async with emulated(webhook=WebhookConfig(poll_interval=NEVER)) as (emu, mj):
        emu.rules.never_finish("confirm")
        task = await held_task(emu, mj, "confirm me")
        url = mj.webhook_url
        assert url is not None
        assert await post(url, forged(task.id)) == 200
        receiver = mj._webhook
        assert receiver is not None
        await emu.wait_until(lambda: receiver.stats.confirms == 1 and not receiver._confirming)
        current = mj.handle(task.id).task
        assert current is not None and current.status is TaskStatus.IN_PROGRESS
        assert current.image_url != "http://evil/x.png"


# -- downloads --------------------------------------------------------------


def listing(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def inside(path: Path, directory: Path) -> bool:
    return path.resolve().parent == directory.resolve() and path.is_file()


def snapshot(task_id: str, url: str) -> Task:
    return Task(id=task_id, status="SUCCESS", image_url=url)


@pytest.fixture
async def dl(server: RecordingServer) -> Any:
    # These tests serve bodies from other ports of 127.0.0.1.
    async with MidjourneySession(
        server.url, KEY, retry=RetryPolicy.without_waits(), timeout=5,
        download_allow=LOCAL_HOSTS,
    ) as mj:
        yield mj


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.1/x.png", "gopher://127.0.0.1/x",
     "FILE:///etc/hosts", "data://image/png;base64,AAAA"],
)
async def test_download_refuses_non_http_urls(
    dl: MidjourneySession, server: RecordingServer, tmp_path: Path, url: str
) -> None:
    with pytest.raises(DownloadRefused):
        await dl.download(snapshot("1", url), tmp_path)
    assert listing(tmp_path) == []
    assert server.requests == []


async def test_download_refuses_an_oversized_declared_body(
    dl: MidjourneySession, tmp_path: Path
) -> None:
    from aiohttp import web

    async def huge(request: web.Request) -> web.StreamResponse:
        # Declares 10 GB, sends a few bytes, then stalls: only a check of the declared
        # length refuses it at once (reading would stall until the timeout).
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.content_length = 10 * 1024**3
        await resp.prepare(request)
        await resp.write(b"\x89PNG\r\n\x1a\n")
        await asyncio.sleep(30)
        return resp

    app = web.Application()
    app.router.add_get("/huge.png", huge)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/huge.png"
    try:
        with pytest.raises(DownloadTooLarge, match="cap"):
            await dl.download(snapshot("1", url), tmp_path, max_bytes=1000, timeout=3)
    finally:
        await runner.cleanup()
    assert listing(tmp_path) == []


async def test_download_stops_an_oversized_streamed_body(
    dl: MidjourneySession, server: RecordingServer, tmp_path: Path
) -> None:
    async def streamed(_: Any) -> Reply:
        return Reply.raw(b"\x89PNG" + b"0" * 600_000, content_type="image/png")

    server.on("GET", "/stream.png", streamed)
    # Hide the length: the cap must hold while reading, not only from the header.
    from aiohttp import web

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(20):
            await resp.write(b"0" * 65536)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/chunked.png", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(DownloadTooLarge, match="cap"):
            await dl.download(
                snapshot("2", f"http://127.0.0.1:{port}/chunked.png"), tmp_path,
                max_bytes=100_000,
            )
    finally:
        await runner.cleanup()
    assert listing(tmp_path) == []  # not even a .part file


@pytest.mark.parametrize(
    "task_id",
    ["../../../escape", "/etc/passwd", "..", "a/../../b", "..\\..\\win", "\x00nul", "~root"],
)
async def test_download_names_never_escape_the_directory(
    dl: MidjourneySession, server: RecordingServer, tmp_path: Path, task_id: str
) -> None:
    server.add("GET", "/x/../../img", Reply.raw(b"\x89PNG\r\n\x1a\n", content_type="image/png"))
    server.add("GET", "/img", Reply.raw(b"\x89PNG\r\n\x1a\n", content_type="image/png"))
    target = tmp_path / "out"
    paths = await dl.download(snapshot(task_id, server.url + "/img"), target)
    assert paths and all(inside(path, target) for path in paths)
    assert [p.name for p in listing(tmp_path)] == ["out"]


# -- TLS --------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:  # pragma: no cover - openssl is on every CI image
        pytest.fail("the TLS tests need the openssl command")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


async def _tls_server(cert: Path, key: Path) -> tuple[Any, str]:
    from aiohttp import web

    async def fetch(_: web.Request) -> web.Response:
        return web.json_response({"id": "1", "status": "SUCCESS"})

    app = web.Application()
    app.router.add_get("/mj/task/1/fetch", fetch)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}"


async def test_tls_is_verified_by_default_and_a_context_can_be_passed(
    self_signed: tuple[Path, Path],
) -> None:
    cert, key = self_signed
    runner, url = await _tls_server(cert, key)
    try:
        async with MidjourneySession(url, KEY, retry=RetryPolicy.never(), timeout=5) as mj:
            with pytest.raises(TransportError) as info:
                await mj.fetch("1")
            assert isinstance(info.value, ConnectError) or "SSL" in str(info.value).upper()
            assert KEY not in str(info.value)
        trusted = ssl.create_default_context(cafile=str(cert))
        async with MidjourneySession(url, KEY, ssl=trusted, timeout=5) as mj:
            assert (await mj.fetch("1")).status is TaskStatus.SUCCESS
    finally:
        await runner.cleanup()


def test_timestamps_are_finite_ints() -> None:
    task = decode_task(b'{"id": "1", "submitTime": 1700000000, "finishTime": "2024-01-01T00:00Z"}')
    assert task is not None and task.submit_time == 1_700_000_000_000
    assert task.finish_time is not None and math.isfinite(task.finish_time)


@pytest.mark.parametrize(
    "body",
    [b'{"id": "1", "status": "\x80BAD"}', b'[{"id": "1", "prompt": "\xff"}]', b'"\xc3"'],
)
def test_invalid_utf8_inside_a_string_is_a_decode_error(body: bytes) -> None:
    for decode in (decode_task, decode_task_list, decode_any):
        with contextlib.suppress(DecodeError):
            decode(body)
    with pytest.raises(DecodeError):
        decode_any(body)
