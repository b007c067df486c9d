"""Every numeric option is checked when the session is made, with an error naming it.

A bad value must never reach a server: a zero poll interval polled a paid
account thousands of times a second. Each refusal is checked against a
recording server that must see no request at all.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from mj_support import KEY, RecordingServer, Reply

from midjourney_async import ConfigurationError, MidjourneySession, RetryPolicy, WebhookConfig

REMOTE = "https://api.example.com"


def make(base_url: str = REMOTE, **kwargs: Any) -> MidjourneySession:
    return MidjourneySession(base_url=base_url, api_key=KEY, **kwargs)


@pytest.mark.parametrize("interval", [0, 0.0, -1, 0.1, 0.49])
def test_remote_poll_interval_under_half_a_second_is_refused(interval: float) -> None:
    with pytest.raises(ConfigurationError, match=r"poll_interval must be at least 0\.5"):
        make(poll_interval=interval)


def test_remote_poll_interval_at_the_floor_is_accepted() -> None:
    assert make(poll_interval=0.5).poll_interval == 0.5


@pytest.mark.parametrize("interval", [0, -0.5, 0.0005])
def test_loopback_poll_interval_floor_is_one_millisecond(interval: float) -> None:
    with pytest.raises(ConfigurationError, match=r"poll_interval must be at least 0\.001"):
        make("http://127.0.0.1:9", poll_interval=interval)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"])
def test_loopback_servers_may_poll_fast(url: str) -> None:
    assert make(url, poll_interval=0.01).poll_interval == 0.01


async def test_zero_poll_interval_sends_nothing(server: RecordingServer) -> None:
    server.add("POST", "/mj/submit/imagine", Reply.json({"code": 1, "result": "1"}))
    with pytest.raises(ConfigurationError, match="poll_interval"):
        async with MidjourneySession(base_url=server.url, api_key=KEY, poll_interval=0) as mj:
            await mj.imagine("a fox")
    assert server.requests == []


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("poll_interval", math.inf, "poll_interval must be a finite number"),
        ("poll_interval", math.nan, "poll_interval must be a finite number"),
        ("poll_interval", "3", "poll_interval must be a number"),
        ("poll_interval", True, "poll_interval must be a number"),
        ("timeout", 0, "timeout must be above 0"),
        ("timeout", -5, "timeout must be above 0"),
        ("timeout", math.inf, "timeout must be a finite number"),
        ("timeout", None, "timeout must be a number"),
        ("wait_timeout", 0, "wait_timeout must be above 0"),
        ("wait_timeout", math.nan, "wait_timeout must be a finite number"),
        ("wait_timeout", math.inf, "wait_timeout must be a finite number"),
        ("not_found_grace", -1, "not_found_grace must be at least 0"),
        ("not_found_grace", math.inf, "not_found_grace must be a finite number"),
        ("chunk_size", 0, "chunk_size must be from 1"),
        ("chunk_size", 10_001, "chunk_size must be from 1 to 10000"),
        ("chunk_size", 2.5, "chunk_size must be a whole number"),
        ("chunk_size", True, "chunk_size must be a whole number"),
        ("max_connections", 0, "max_connections must be from 1"),
        ("max_connections", -3, "max_connections must be from 1"),
        ("max_connections", 1.0, "max_connections must be a whole number"),
        ("max_in_flight", 0, "max_in_flight must be from 1"),
        ("max_in_flight", -1, "max_in_flight must be from 1"),
        ("max_in_flight", 2.0, "max_in_flight must be a whole number"),
        ("max_response_bytes", 0, "max_response_bytes must be from 1024"),
        ("max_response_bytes", 1023, "max_response_bytes must be from 1024"),
        ("max_response_bytes", 2**41, "max_response_bytes must be from 1024"),
    ],
)
def test_bad_numbers_are_refused_naming_the_option(option: str, value: Any, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        make(**{option: value})


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"max_tries": 0}, "retry.max_tries must be from 1"),
        ({"max_tries": 101}, "retry.max_tries must be from 1 to 100"),
        ({"max_tries": 2.5}, "retry.max_tries must be a whole number"),
        ({"max_time": 0}, "retry.max_time must be above 0"),
        ({"max_time": math.nan}, "retry.max_time must be a finite number"),
        ({"max_time": math.inf}, "retry.max_time must be a finite number"),
        ({"base_delay": -0.1}, "retry.base_delay must be at least 0"),
        ({"base_delay": math.inf}, "retry.base_delay must be a finite number"),
        ({"max_delay": -1}, "retry.max_delay must be at least 0"),
        ({"max_delay": math.inf}, "retry.max_delay must be a finite number"),
        ({"max_retry_after": -1}, "retry.max_retry_after must be at least 0"),
        ({"max_retry_after": math.inf}, "retry.max_retry_after must be a finite number"),
        ({"wait_scale": -1}, "retry.wait_scale must be at least 0"),
        ({"wait_scale": math.nan}, "retry.wait_scale must be a finite number"),
    ],
)
def test_bad_retry_policies_are_refused(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        make(retry=RetryPolicy(**fields))


def test_retry_must_be_a_policy() -> None:
    with pytest.raises(ConfigurationError, match="retry must be a RetryPolicy, not dict"):
        make(retry={"max_tries": 3})


def test_good_retry_policies_are_kept() -> None:
    policy = RetryPolicy(max_tries=1, max_time=0.5, base_delay=0, max_delay=0, wait_scale=0)
    assert make(retry=policy).retry is policy
    assert make(retry=RetryPolicy.never()).retry.max_tries == 1


@pytest.mark.parametrize("interval", [0, 0.2, math.inf, math.nan])
def test_webhook_poll_interval_is_checked_like_poll_interval(interval: float) -> None:
    with pytest.raises(ConfigurationError, match="webhook poll_interval must be"):
        make(webhook=WebhookConfig(poll_interval=interval))


def test_errors_are_value_errors_too() -> None:
    # Code that guards construction with `except ValueError` keeps working.
    with pytest.raises(ValueError, match="poll_interval"):
        make(poll_interval=0)


def test_poll_interval_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_POLL_INTERVAL", "7.5")
    assert make().poll_interval == 7.5
    assert make(poll_interval=4).poll_interval == 4  # the argument wins


def test_poll_interval_defaults_to_three_seconds() -> None:
    assert make().poll_interval == 3.0


@pytest.mark.parametrize(
    ("value", "words"),
    [("soon", "MJ_POLL_INTERVAL must be a number of seconds"),
     ("0.1", r"MJ_POLL_INTERVAL must be at least 0\.5"),
     ("inf", "MJ_POLL_INTERVAL must be a finite number")],
)  # fmt: skip
def test_a_bad_poll_interval_in_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, words: str
) -> None:
    monkeypatch.setenv("MJ_POLL_INTERVAL", value)
    with pytest.raises(ConfigurationError, match=words):
        make()
