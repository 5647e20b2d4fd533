"""RedisCooldowns: parks shared by every process and host on one Redis.

Reads never leave the process: each store keeps a MemoryCooldowns mirror of
the pool's parks. A background task keeps the mirror in step: it loads every
park on (re)connect and every ``resync`` seconds, applies parks other processes
publish, and writes ours with a Lua max-set that carries a TTL, so concurrent
writers never shorten a park and Redis expires it by itself. A success clears a
park everywhere only when it is newer than the park (a Lua compare-and-delete).
A half-open member's probe is single-flight across processes through a short
``SET NX`` lock.

The first call awaits the first load once (``open``), bounded by
``first_load_timeout``, so a new process sees the parks already in Redis. When
Redis is unreachable the store goes on with its local parks, logs one warning,
and reconnects with backoff: no call fails, and none waits longer than that
bound, because of the store. See docs/architecture.md and docs/redis.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, final

import anyio

from .._redact import redact_url
from ._store import MemoryCooldowns, ParkKind

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["RedisCooldowns"]

log = logging.getLogger("fallover")

# KEYS[1] park key, KEYS[2] channel.
# ARGV[1] deadline (epoch ms), ARGV[2] ttl ms, ARGV[3] message, ARGV[4] stored value.
# A stored value is "deadline_ms:set_at_ms:kind"; its first field orders parks.
_MAX_SET = """
local current = redis.call('GET', KEYS[1])
local deadline = 0
if current then deadline = tonumber(string.match(current, '^[^:]+')) or 0 end
if tonumber(ARGV[1]) > deadline then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
  redis.call('PUBLISH', KEYS[2], ARGV[3])
  return 1
end
return 0
"""

# KEYS[1] park key, KEYS[2] channel; ARGV[1] the success's start (epoch ms), ARGV[2] message.
# Delete the park only when it was set before the attempt that succeeded began.
_CLEAR = """
local current = redis.call('GET', KEYS[1])
if current then
  local set_at = tonumber(string.match(current, '^[^:]+:([^:]+)')) or 0
  if set_at > tonumber(ARGV[1]) then return 0 end
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1
"""

# KEYS[1] a limit's counter for the current second; ARGV[1] wanted, ARGV[2] the
# second's allowance. Grant what is left of it, up to what is wanted.
_LEASE = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], 5000) end
local over = used - tonumber(ARGV[2])
if over <= 0 then return tonumber(ARGV[1]) end
local granted = tonumber(ARGV[1]) - over
if granted < 0 then granted = 0 end
redis.call('DECRBY', KEYS[1], tonumber(ARGV[1]) - granted)
return granted
"""

# KEYS[1] probe lock; ARGV[1] our token: delete the lock only if we hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_LIVE = 0.0  # a pending write's deadline that means "cleared by a success"


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _import_redis() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "RedisCooldowns needs the redis package: pip install 'fallover[redis]'"
        ) from exc
    return aioredis


@final
class RedisCooldowns:
    """Parks for pool ``pool``, mirrored in memory and shared through Redis at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        pool: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        wall: Callable[[], float] = time.time,
        probe_ttl: float = 30.0,
        resync: float = 30.0,
        op_timeout: float = 0.5,
        first_load_timeout: float = 0.5,
    ) -> None:
        self._aioredis = _import_redis()
        self._local = MemoryCooldowns(clock=clock, sleep=sleep)
        self._clock = clock
        self.url = url
        self.pool = pool
        self._wall = wall
        self._prefix = f"fallover:{pool}:"
        self._channel = f"{self._prefix}events"
        self._probe_ttl_ms = int(probe_ttl * 1000)
        self._resync = resync
        self._op_timeout = op_timeout
        self._first_load_timeout = first_load_timeout
        # Writes not yet sent: key -> (epoch deadline or _LIVE, epoch set_at, kind).
        self._pending: dict[str, tuple[float, float, ParkKind]] = {}
        self._wakeup: asyncio.Event | None = None
        self._first_load: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._redis: aioredis.Redis | None = None
        self._connected = False
        self._warned = False
        self._closed = False
        self.failures = 0  # Redis errors seen (connects, reads, writes): for tests and metrics
        self._token = f"{os.getpid()}-{id(self)}"
        self._locks: set[str] = set()  # probe locks this store holds in Redis
        self._background: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"RedisCooldowns({redact_url(self.url)!r}, pool={self.pool!r})"

    @property
    def connected(self) -> bool:
        """Whether the mirror is currently in step with Redis."""
        return self._connected

    @property
    def pending(self) -> int:
        """Park writes made here and not yet sent to Redis."""
        return len(self._pending)

    def _epoch(self, monotonic: float) -> float:
        return self._wall() - (self._clock() - monotonic)

    def _monotonic(self, epoch: float) -> float:
        return self._clock() - (self._wall() - epoch)

    # -- the call path: local, synchronous queries -------------------------------------

    def now(self) -> float:
        return self._local.now()

    @property
    def version(self) -> int:
        return self._local.version

    def has_parks(self) -> bool:
        return self._local.has_parks()

    def remaining(self, key: str) -> float | None:
        return self._local.remaining(key)

    def kind(self, key: str) -> ParkKind | None:
        return self._local.kind(key)

    def parked_at(self, key: str) -> float | None:
        return self._local.parked_at(key)

    def half_open(self, key: str) -> bool:
        return self._local.half_open(key)

    def streak(self, key: str) -> int:
        return self._local.streak(key)

    async def wait(self, seconds: float) -> None:
        await self._local.wait(seconds)

    # -- changes -------------------------------------------------------------------------

    async def open(self) -> None:
        """Start mirroring and wait for the first load, at most ``first_load_timeout``."""
        self._kick()
        loaded = self._first_load
        if loaded is not None and not loaded.is_set():
            with anyio.move_on_after(self._first_load_timeout):
                await loaded.wait()

    def start(self) -> None:
        """Start mirroring now (``open`` and the first park also start it)."""
        self._kick()

    def park(
        self, key: str, seconds: float, *, kind: ParkKind = "backoff", count: bool = True
    ) -> float:
        left = self._local.park(key, seconds, kind=kind, count=count)
        set_at = self._local.parked_at(key)
        now = self._wall()
        self._pending[key] = (now + left, self._epoch(set_at) if set_at else now, kind)
        self._kick()
        return left

    def succeeded(self, key: str, *, started: float) -> None:
        before = self._local.version
        self._local.succeeded(key, started=started)
        if self._local.version != before:  # it cleared something: tell the others
            self._pending[key] = (_LIVE, self._epoch(started), "backoff")
            self._kick()

    def lease(self, name: str, want: int, per_second: float, grant: Callable[[int], None]) -> None:
        """Take up to ``want`` of ``name``'s allowance for the current second, in the background.

        Without Redis the allowance is this process's alone: ``want`` is granted
        after the time it takes to refill at ``per_second``.
        """

        async def ask() -> None:
            granted: int | None = None
            try:
                granted = await take()
            finally:
                grant(granted or 0)  # whatever happens, the bucket may ask again
                self._local.notify()

        async def take() -> int:
            granted: int | None = None
            client = self._redis
            if client is not None and self._connected:
                second = int(self._wall())
                key = f"{self._prefix}pace:{name}:{second}"
                try:
                    with anyio.fail_after(self._op_timeout):
                        granted = int(
                            await client.eval(_LEASE, 1, key, want, max(1, int(per_second)))
                        )
                except (OSError, TimeoutError, self._aioredis.RedisError) as exc:
                    self._lost(exc)
            if granted is None:
                await anyio.sleep(want / per_second)
                granted = want
            return granted

        self._kick()
        self._spawn(ask())

    async def begin_probe(self, key: str) -> bool:
        local = self._local
        if not local.take_probe(key):
            return False
        if not local.probing(key) or self._redis is None or not self._connected:
            return True  # not half-open, or Redis is away: the local probe is enough
        try:
            with anyio.fail_after(self._op_timeout):
                won = await self._redis.set(
                    self._probe_key(key), self._token, nx=True, px=self._probe_ttl_ms
                )
        except (OSError, TimeoutError, self._aioredis.RedisError) as exc:
            self._lost(exc)
            return True
        if not won:
            local.end_probe(key)
            return False
        self._locks.add(key)
        return True

    def end_probe(self, key: str) -> None:
        self._local.end_probe(key)
        if key in self._locks:
            self._locks.discard(key)
            if self._redis is not None and self._connected:
                self._spawn(self._redis.eval(_RELEASE, 1, self._probe_key(key), self._token))

    # -- background ----------------------------------------------------------------------

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
            self._first_load = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"fallover-redis-{self.pool}")
        if self._wakeup is not None:
            self._wakeup.set()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def quiet() -> None:
            with contextlib.suppress(OSError, self._aioredis.RedisError):
                await coro  # a stale lock expires by its TTL

        task = asyncio.get_running_loop().create_task(quiet())
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    def _lost(self, exc: BaseException) -> None:
        self._connected = False
        self.failures += 1
        if self._first_load is not None:
            self._first_load.set()  # Redis is away: nobody waits for a load that won't come
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
                    await self._close_quietly(redis_client)
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _session(self) -> None:
        client = self._aioredis.from_url(
            self.url, socket_connect_timeout=2, socket_timeout=None, decode_responses=True
        )
        self._redis = client
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            await self._load(client)
            self._connected = True
            if self._first_load is not None:
                self._first_load.set()
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
            await self._close_quietly(pubsub)

    async def _load(self, client: aioredis.Redis) -> None:
        """Mirror every park the pool has in Redis."""
        pattern = _glob_escape(self._park_key("")) + "*"
        keys = [k async for k in client.scan_iter(match=pattern, count=200)]
        if not keys:
            return
        values = await client.mget(keys)
        offset = len(self._park_key(""))
        for k, v in zip(keys, values, strict=True):
            if v is None:
                continue
            fields = str(v).split(":")
            try:
                until = float(fields[0]) / 1000.0
                set_at = float(fields[1]) / 1000.0 if len(fields) > 1 else self._wall()
            except ValueError:
                continue  # not one of ours
            kind: ParkKind = "long" if fields[-1] == "long" else "backoff"
            self._apply(k[offset:], until, set_at, kind)

    def _apply(self, key: str, until_epoch: float, set_at_epoch: float, kind: ParkKind) -> None:
        if until_epoch <= _LIVE:
            self._local.succeeded(key, started=self._monotonic(set_at_epoch))
            return
        left = until_epoch - self._wall()
        if left > 0:
            now = self._clock()
            self._local.mirror(key, now + left, set_at=self._monotonic(set_at_epoch), kind=kind)

    async def _listen(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                data = json.loads(message["data"])
                kind: ParkKind = "long" if data.get("l") else "backoff"
                self._apply(str(data["k"]), float(data["u"]), float(data["s"]), kind)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # someone else's garbage on our channel
        raise ConnectionError("pub/sub connection closed")

    async def _write_loop(self, client: aioredis.Redis) -> None:
        max_set = client.register_script(_MAX_SET)
        clear = client.register_script(_CLEAR)
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                key, write = next(iter(self._pending.items()))
                until, set_at, kind = write
                message = json.dumps({"k": key, "u": until, "s": set_at, "l": kind == "long"})
                keys = [self._park_key(key), self._channel]
                if until <= _LIVE:
                    await clear(keys=keys, args=[int(set_at * 1000), message])
                else:
                    ttl_ms = int((until - self._wall()) * 1000)
                    if ttl_ms > 0:
                        stored = f"{int(until * 1000)}:{int(set_at * 1000)}:{kind}"
                        await max_set(keys=keys, args=[int(until * 1000), ttl_ms, message, stored])
                if key in self._locks:
                    self._locks.discard(key)
                    await client.eval(_RELEASE, 1, self._probe_key(key), self._token)
                if self._pending.get(key) == write:
                    del self._pending[key]

    async def _resync_loop(self, client: aioredis.Redis) -> None:
        while True:
            await asyncio.sleep(self._resync)
            await self._load(client)

    async def _close_quietly(self, thing: Any) -> None:
        with contextlib.suppress(OSError, RuntimeError, self._aioredis.RedisError):
            await thing.aclose()

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
        await self._local.aclose()
