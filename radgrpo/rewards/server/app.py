"""FastAPI app of the reward server: `POST /score` and `GET /health`, with micro-batching,
per-request timeouts and an optional bearer token.

verl calls `compute_score` once per sample from many threads, so each request carries few items;
the batcher of each scorer gathers the items of concurrent requests (up to `max_batch`, waiting at
most `max_wait_ms`) into one scorer call, which is what makes GPU scorers worth serving. A request
that is not answered within `request_timeout` seconds gets HTTP 504 and the client falls back.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Callable

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

Scorer = Callable[[list[dict]], list[dict]]


class ScoreRequest(BaseModel):
    scorer: str
    items: list[dict]


class Batcher:
    """Gathers (item, future) pairs of concurrent requests and scores them in batches in a thread."""

    def __init__(self, scorer: Scorer, max_batch: int, max_wait_ms: float):
        self.scorer, self.max_batch, self.max_wait = scorer, max_batch, max_wait_ms / 1000.0
        self.queue: asyncio.Queue | None = None

    async def score(self, items: list[dict]) -> list[dict]:
        if self.queue is None:
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._run())
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, future in zip(items, futures):
            self.queue.put_nowait((item, future))
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time())))
                except asyncio.TimeoutError:
                    break
            live = [(item, future) for item, future in batch if not future.done()]
            if not live:
                continue
            try:
                results = await asyncio.to_thread(self.scorer, [item for item, _ in live])
                if len(results) != len(live):
                    raise ValueError(f"scorer returned {len(results)} results for {len(live)} items")
                for (_, future), result in zip(live, results):
                    if not future.done():
                        future.set_result(result)
            except Exception as exc:  # noqa: BLE001 - a scorer error fails its requests, not the server
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)


def create_app(
    scorers: dict[str, Scorer],
    token: str | None = None,
    max_batch: int = 64,
    max_wait_ms: float = 5.0,
    request_timeout: float = 60.0,
) -> FastAPI:
    """The server app for `scorers`; requests must carry `Authorization: Bearer <token>` when set."""
    app = FastAPI(title="radgrpo reward server")
    batchers = {name: Batcher(fn, max_batch, max_wait_ms) for name, fn in scorers.items()}

    def authorise(authorization: str | None) -> None:
        if token and not hmac.compare_digest(authorization or "", f"Bearer {token}"):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    @app.get("/health")
    async def health(authorization: str | None = Header(default=None)) -> dict:
        authorise(authorization)
        return {"status": "ok", "scorers": sorted(scorers)}

    @app.post("/score")
    async def score(request: ScoreRequest, authorization: str | None = Header(default=None)) -> dict:
        authorise(authorization)
        if request.scorer not in batchers:
            raise HTTPException(status_code=404, detail=f"unknown scorer {request.scorer!r}; serving {sorted(scorers)}")
        try:
            results = await asyncio.wait_for(batchers[request.scorer].score(request.items), request_timeout)
        except asyncio.TimeoutError:
            raise HTTPException(status_code=504, detail=f"scoring took longer than {request_timeout} s") from None
        except Exception as exc:  # noqa: BLE001 - reported to the client, which falls back
            raise HTTPException(status_code=500, detail=f"{type(exc).__name__}: {exc}"[:300]) from None
        return {"results": results}

    return app
