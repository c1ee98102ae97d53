"""The Python examples of the README and of docs/ run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
# docs/operating.md shows fragments of a deployment (an existing app, gunicorn's config file).
DOC_BLOCKS = [
    (f"{page.stem}{i}", page, code)
    for page in sorted((ROOT / "docs").glob("*.md"))
    if page.name != "operating.md"
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
]


def test_readme_has_examples() -> None:
    assert BLOCKS, "README.md should show runnable Python examples"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str) -> None:
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)


@pytest.mark.parametrize(
    ("page", "code"),
    [(page, code) for _, page, code in DOC_BLOCKS],
    ids=[i for i, _, _ in DOC_BLOCKS],
)
def test_docs_example_runs(page: Path, code: str) -> None:
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code, str(page), "exec"), namespace)


def test_readme_aiohttp_example_serves() -> None:
    """The aiohttp example in the README answers its routes, and gives every arena back."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    code = next(b for b in BLOCKS if "def make_app" in b)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    make_app = namespace["make_app"]
    assert callable(make_app)

    async def main() -> None:
        app = make_app()
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/report")
            assert resp.status == 200
            text = await resp.text()
            assert text.startswith("0,0\n1,1\n2,4\n")
            assert text.count("\n") == 1000
            resp = await client.post("/upload", data=b"x" * 5000)
            assert resp.status == 200
            assert await resp.json() == {"size": 5000}
            from electron.aio.aiohttp import AOP_KEY

            aop = app[AOP_KEY]
            for _ in range(100):  # memory goes back after the flush, not at once
                if aop.statistics().active_arenas == 0:
                    break
                await asyncio.sleep(0.01)
            assert aop.statistics().active_arenas == 0
            assert aop.statistics().active_buffers == 0

    asyncio.run(main())
