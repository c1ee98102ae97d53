"""The route mix parser and the scenario presets."""

from __future__ import annotations

import pytest

from bench._lt._config import SCENARIOS, resolve
from bench._lt._mix import DEFAULT_MIX, parse_mix


def test_parse_the_issue_example() -> None:
    routes = parse_mix("/=50,/json=20,/bytes/65536=20,/render=10")
    assert [(r.name, r.kind, r.weight, r.size) for r in routes] == [
        ("/", "hello", 50.0, 0),
        ("/json", "json", 20.0, 0),
        ("/bytes/65536", "bytes", 20.0, 65536),
        ("/render", "render", 10.0, 10),
    ]
    assert all(r.method == "GET" for r in routes)


def test_upload_and_render_items() -> None:
    routes = parse_mix(" /upload=1 , /render?items=3=2 ,/json=0", upload_size=1000)
    assert [(r.name, r.kind, r.size, r.method) for r in routes] == [
        ("/upload", "upload", 1000, "POST"),
        ("/render?items=3", "render", 3, "GET"),
    ]
    assert {r.kind for r in parse_mix(DEFAULT_MIX)} == {"hello", "json", "bytes", "render",
                                                        "upload"}


@pytest.mark.parametrize(("spec", "message"), [
    ("/nope=1", "unknown route"),
    ("/=x", "not a number"),
    ("/=-1", ">= 0"),
    ("/", "PATH=WEIGHT"),
    ("/=0,/json=0", "no route"),
    ("/=1,/=2", "twice"),
    ("/bytes/0=1", "1 .."),
    ("/bytes/8388609=1", "1 .."),
])
def test_bad_mixes_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(spec)


def test_every_scenario_is_bounded_and_valid() -> None:
    for name in SCENARIOS:
        cfg = resolve(name, {})
        assert 0 < cfg.duration <= 600
        assert cfg.timeout > 0
        quick = resolve(name, {"quick": True})
        assert quick.duration <= 5
    assert resolve("stress", {}).concurrency == 100
    burst = resolve("burst", {})
    assert burst.burst_factor == 10
    assert burst.burst_windows
    assert resolve("slow-readers", {}).slow_readers > 0
    assert resolve("soak", {}).rss_window == "second-half"


def test_explicit_options_win_over_the_preset() -> None:
    cfg = resolve("stress", {"concurrency": 7, "quick": True, "duration": None})
    assert cfg.concurrency == 7
    assert cfg.duration == 2.0
    counted = resolve("mixed", {"requests": 1000})
    assert counted.requests == 1000
    assert counted.duration == 300.0  # a count-bounded run still has a time bound
    with pytest.raises(ValueError, match="unknown scenario"):
        resolve("marathon", {})
    with pytest.raises(ValueError, match="baseline-url"):
        resolve("mixed", {"compare": True, "url": "http://127.0.0.1:1"})
