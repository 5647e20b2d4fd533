"""RedisCooldowns: parks shared by every process and host on one Redis (DESIGN section 8).

Reads never leave the process: each store mirrors the pool's parks in memory
(it is a MemoryCooldowns underneath). A background task keeps the mirror in
step: it loads every park on (re)connect and every ``resync`` seconds, applies
parks other processes publish, and writes ours with a Lua max-set that carries
a TTL, so concurrent writers never shorten a park and Redis expires it by
itself. A half-open member's probe is single-flight across processes through a
short ``SET NX`` lock. When Redis is unreachable the store goes on with its
local parks, logs one warning, and reconnects with backoff: no call fails or
waits because of the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ._cooldown import MemoryCooldowns
from ._redact import redact_url

__all__ = ["RedisCooldowns"]

log = logging.getLogger("fallover")

# KEYS[1] park key, KEYS[2] channel; ARGV[1] deadline (epoch ms), ARGV[2] ttl ms, ARGV[3] message
_MAX_SET = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('PUBLISH', KEYS[2], ARGV[3])
  return wanted
end
return current
"""

# KEYS[1] probe lock; ARGV[1] our token: delete the lock only if we hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisCooldowns(MemoryCooldowns):
    """A MemoryCooldowns mirrored through Redis for pool ``pool``."""

    def __init__(
        self,
        url: str,
        *,
        pool: str,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        probe_ttl: float = 30.0,
        resync: float = 30.0,
        op_timeout: float = 0.5,
    ) -> None:
        super().__init__(clock=clock)
        self.url = url
        self.pool = pool
        self._wall = wall
        self._prefix = f"fallover:{pool}:"
        self._channel = f"{self._prefix}events"
        self._probe_ttl_ms = int(probe_ttl * 1000)
        self._resync = resync
        self._op_timeout = op_timeout
        self._pending: dict[str, float] = {}  # park writes not yet sent: key -> epoch deadline
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._redis: aioredis.Redis | None = None
        self._connected = False
        self._warned = False
        self._closed = False
        self.failures = 0  # Redis errors seen (connects, reads, writes): for tests and metrics
        self._token = f"{os.getpid()}-{id(self)}"
        self._locks: set[str] = set()  # probe locks this store holds in Redis
        self._background: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"RedisCooldowns({redact_url(self.url)!r}, pool={self.pool!r})"

    @property
    def connected(self) -> bool:
        """Whether the mirror is currently in step with Redis."""
        return self._connected

    # -- the call path: local, synchronous --------------------------------------------

    def has_parks(self) -> bool:
        if self._task is None and not self._closed:
            self._kick()  # start mirroring on the first call, before anything is parked here
        return super().has_parks()

    def park(self, key: str, seconds: float) -> float:
        left = super().park(key, seconds)
        self._pending[key] = self._wall() + left
        self._kick()
        return left

    def succeeded(self, key: str) -> None:
        was_half_open = key in self._half_open
        super().succeeded(key)
        if was_half_open:
            self._pending[key] = 0.0  # 0: "live", tells the others to stop waiting for a probe
            self._kick()

    def end_probe(self, key: str) -> None:
        super().end_probe(key)
        self._release(key)

    def _release(self, key: str) -> None:
        if key in self._locks:
            self._locks.discard(key)
            if self._redis is not None and self._connected:
                self._spawn(self._redis.eval(_RELEASE, 1, self._probe_key(key), self._token))

    async def begin_probe(self, key: str) -> bool:
        if not self._take_probe(key):
            return False
        if key not in self._probing or self._redis is None or not self._connected:
            return True  # not half-open, or Redis is away: the local probe is enough
        try:
            with anyio.fail_after(self._op_timeout):
                won = await self._redis.set(
                    self._probe_key(key), self._token, nx=True, px=self._probe_ttl_ms
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._lost(exc)
            return True
        if not won:
            self._probing.discard(key)
            return False
        self._locks.add(key)
        return True

    # -- background ---------------------------------------------------------------------

    def _park_key(self, key: str) -> str:
        return f"{self._prefix}park:{key}"

    def _probe_key(self, key: str) -> str:
        return f"{self._prefix}probe:{key}"

    def _kick(self) -> None:
        if self._closed:
            return
        if self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop yet: the writes wait in _pending
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"fallover-redis-{self.pool}")
        if self._wakeup is not None:
            self._wakeup.set()

    def start(self) -> None:
        """Start mirroring now (it also starts by itself on the first park)."""
        self._kick()

    def _spawn(self, coro: Any) -> None:
        async def quiet() -> None:
            with contextlib.suppress(RedisError, OSError):  # a stale lock expires by its TTL
                await coro

        task = asyncio.get_running_loop().create_task(quiet())
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    def _lost(self, exc: BaseException) -> None:
        self._connected = False
        self.failures += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "redis cooldown store %s unreachable (%s); going on with local parks",
                redact_url(self.url),
                type(exc).__name__,
            )

    async def _run(self) -> None:
        delay = 0.2
        while not self._closed:
            try:
                await self._session()
            except Exception as exc:  # every Redis or network failure: back off, reconnect
                self._lost(exc)
            else:
                delay = 0.2
            finally:
                self._connected = False
                if self._redis is not None:
                    redis_client, self._redis = self._redis, None
                    await _close_quietly(redis_client)
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _session(self) -> None:
        client = aioredis.from_url(
            self.url, socket_connect_timeout=2, socket_timeout=None, decode_responses=True
        )
        self._redis = client
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            await self._load(client)
            self._connected = True
            if self._pending and self._wakeup is not None:
                self._wakeup.set()  # flush what was parked while Redis was away
            if self._warned:
                log.warning("redis cooldown store %s reachable again", redact_url(self.url))
                self._warned = False
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._listen, pubsub)
                tg.start_soon(self._write_loop, client)
                tg.start_soon(self._resync_loop, client)
        finally:
            await _close_quietly(pubsub)

    async def _load(self, client: aioredis.Redis) -> None:
        """Mirror every park the pool has in Redis."""
        pattern = _glob_escape(self._park_key("")) + "*"
        keys = [k async for k in client.scan_iter(match=pattern, count=200)]
        if not keys:
            return
        values = await client.mget(keys)
        offset = len(self._park_key(""))
        for k, v in zip(keys, values, strict=True):
            if v is not None:
                self._apply(k[offset:], float(v) / 1000.0)

    def _apply(self, key: str, until_epoch: float) -> None:
        if until_epoch <= 0:
            if key not in self._until:
                self._half_open.discard(key)
                self._probing.discard(key)
            return
        left = until_epoch - self._wall()
        if left > 0:
            self._set_until(key, self._clock() + left, count=False)

    async def _listen(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                data = json.loads(message["data"])
                self._apply(str(data["k"]), float(data["u"]))
            except (ValueError, KeyError, TypeError):
                continue  # someone else's garbage on our channel
        raise ConnectionError("pub/sub connection closed")

    async def _write_loop(self, client: aioredis.Redis) -> None:
        script = client.register_script(_MAX_SET)
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                key, until = next(iter(self._pending.items()))
                message = json.dumps({"k": key, "u": until})
                if until <= 0:
                    await client.publish(self._channel, message)
                else:
                    ttl_ms = int((until - self._wall()) * 1000)
                    if ttl_ms > 0:
                        await script(
                            keys=[self._park_key(key), self._channel],
                            args=[int(until * 1000), ttl_ms, message],
                        )
                if key in self._locks:
                    self._locks.discard(key)
                    await client.eval(_RELEASE, 1, self._probe_key(key), self._token)
                if self._pending.get(key) == until:
                    del self._pending[key]

    async def _resync_loop(self, client: aioredis.Redis) -> None:
        while True:
            await asyncio.sleep(self._resync)
            await self._load(client)

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we were cancelled too: never swallow the caller's cancel
        await super().aclose()


async def _close_quietly(thing: Any) -> None:
    with contextlib.suppress(RedisError, OSError, RuntimeError):
        await thing.aclose()
