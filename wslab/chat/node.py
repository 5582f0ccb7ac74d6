"""One chat node: the hub's rules over the stores, with the limits that keep one client
from hurting the others. Async (it awaits the stores) but owns no sockets.

The network adapter (:mod:`wslab.chat.net.service`) calls :meth:`ChatNode.open`,
:meth:`ChatNode.go_live`, :meth:`ChatNode.submit` and :meth:`ChatNode.close`, and writes
the :class:`Outbound` items they return; items for messages committed by the log (this
node's and, with a shared store, other nodes') reach the ``emit`` callback given to
:meth:`ChatNode.start`. The synchronous :class:`wslab.chat.model.chat.ChatModel` drives
the same node over the in-memory stores, so there is one implementation of the rules.

Rules enforced here, each a setting of :class:`Limits`:

- a wrong secret counts against the name and the address; after ``login_free`` in a
  row, each next attempt waits twice as long (from 1 s up to 5 min), refused with 4029.
  The name's delay holds for every address (a guesser with many addresses is slowed
  all the same), except one from which this name logged in before: there only the
  address's own count applies, so its owner is not locked out by someone else's
  guesses;
- new names: at most ``registrations_per_minute`` per address and ``max_users`` in
  all (4003);
- secrets are hashed off the event loop, at most ``kdf_workers`` at a time, with at
  most ``max_pending_logins`` waiting (1013 beyond);
- a resume's history is read at most ``max_replays`` at a time (a read may be
  megabytes, and it shares the store with the appends of everyone else), with at
  most ``max_pending_logins`` waiting, and at most ``replays_per_second`` per address
  (bursts of 5: the tabs of a browser after a restart), 1013 beyond (a caller that
  gives no address, the in-process model, has no rate);
- lines: ``max_rate`` per second on average (bursts of ``burst``) per user, across
  all its sessions and reconnects, and ``address_share`` times that per address (a
  few people behind one NAT); every frame counts, a malformed one too. A line over the
  limit gets an error and is not sent.

What these rules count lives in a :class:`wslab.chat.stores.Limiter`: in memory for
one node, in Redis for nodes sharing one (so a user's lines and a name's wrong secrets
are counted once across the nodes). Each frame is also charged here, on this node
only, to the same rates (:meth:`ChatNode.spend`), before any store is asked: that
bounds the work one connection makes for its node, and on a single node it is the
only count of lines.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import AuthError, CloseCode, Refusal, StoreError
from .rules.addresses import address_key
from .rules.commands import CommandError, PrivateText, PublicText, WhoQuery, parse_line
from .rules.hub import Hub, Recovery, resume_read
from .rules.kdf import SCRYPT, Scrypt
from .rules.messages import Kind, Message, Outbound, Session
from .rules.names import normalize_name
from .rules.ratelimit import KeyedBuckets
from .stores import CredentialStore, Limiter, MessageLog, Presence
from .stores.memory import MemoryLimiter

logger = logging.getLogger(__name__)

__all__ = ["ChatNode", "Limits"]

Emit = Callable[[list[Outbound]], None]

STORE_DOWN = (
    "O servidor perdeu o contato com o armazenamento compartilhado (Redis): por "
    "enquanto nenhuma mensagem é guardada nem entregue, e as que você enviar recebem "
    "erro. Sua sessão continua aberta."
)
STORE_BACK = (
    "Contato com o armazenamento compartilhado restabelecido: as mensagens guardadas "
    "nesse intervalo chegam agora, em ordem."
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The node's limits; ``max_rate=None`` lifts the line rate limit (benchmarks)."""

    max_rate: float | None = 20.0
    burst: int = 40
    address_share: float = 5.0  # an address may send as much as this many users
    login_free: int | None = 5  # None: no throttle (the in-memory model)
    login_cap: float = 300.0
    registrations_per_minute: int | None = 10  # None: no cap per address
    max_users: int = 100_000
    kdf_workers: int = 2
    max_pending_logins: int = 64
    max_replays: int = 2  # history reads at once (each may be megabytes); others wait
    replays_per_second: float | None = 1.0  # per address, bursts of 5 (None: no limit)


class ChatNode:
    """The hub, the stores and the limits of one node.

    Args:
        log, credentials: the stores (:mod:`wslab.chat.stores`).
        kdf: cost of new secret records (verification uses each record's own cost).
        limits: see :class:`Limits`.
        offload: runs a CPU-heavy function off the event loop and awaits it; by
            default a thread pool of ``limits.kdf_workers``. ``None`` runs it inline
            (the synchronous model).
        clock: monotonic seconds, for the limits.
        presence: who is online on the other nodes of a shared store (see
            :class:`Presence`); ``/who`` then lists them with this node's users.
        limiter: where the limits count (see the module docstring); by default in
            memory, with ``limits``' login throttle. A limiter given is taken to be
            shared with other nodes: it also counts each user's stored lines.
    """

    def __init__(
        self,
        log: MessageLog,
        credentials: CredentialStore,
        *,
        kdf: Scrypt = SCRYPT,
        limits: Limits = Limits(),
        offload: Callable | None | str = "threads",
        clock: Callable[[], float] = time.monotonic,
        hub: Hub | None = None,
        presence: Presence | None = None,
        limiter: Limiter | None = None,
        metrics=None,
    ) -> None:
        self.log = log
        # The network's collectors (wslab.chat.net.metrics.Metrics), duck-typed so the
        # node imports nothing of the network; None counts nothing.
        self.metrics = metrics
        self.presence = presence
        self.credentials = credentials
        self.kdf = kdf
        self.limits = limits
        self.hub = hub if hub is not None else Hub()
        self._clock = clock
        self._emit: Emit = lambda items: None
        self._pool: ThreadPoolExecutor | None = None
        if offload == "threads":
            self._pool = ThreadPoolExecutor(limits.kdf_workers, "wslab-kdf")
            offload = self._in_pool
        self._offload = offload
        self._pending_logins = 0
        # Names known to be registered (never removed: a name, once taken, stays). A
        # /msg to one of them needs no lookup, so awaits_store and submit agree.
        self._registered: set[str] = set()
        self._replays: asyncio.Semaphore | None = None  # made on the loop, when first needed
        self._waiting_replays = 0
        self.limiter = (
            limiter
            if limiter is not None
            else MemoryLimiter(clock, login_free=limits.login_free or 0, login_cap=limits.login_cap)
        )
        # A limiter given (a shared store) counts a user's lines on every node; this
        # node's own one would count them a second time, after spend already did.
        self._shared_lines = limiter is not None and bool(limits.max_rate)
        self._lines = KeyedBuckets(limits.max_rate, limits.burst) if limits.max_rate else None
        share = limits.address_share
        self._address_lines = (
            KeyedBuckets(share * limits.max_rate, max(1, round(share * limits.burst)))
            if limits.max_rate
            else None
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, emit: Emit, lost: Callable[[str], None] | None = None) -> None:
        """Start the log; committed messages now reach ``emit`` as outbound items.

        ``lost(epoch)``: the store lost messages (a shared store came back empty, or
        this node fell behind it); the caller closes its sessions so that they resume.
        When a shared store stops or starts again answering, every live session gets
        a notice (``STORE_DOWN``, ``STORE_BACK``) through ``emit``.
        """
        self._emit = emit
        await self.log.start(self._committed, lost, self._outage)
        if self.presence is not None:
            await self.presence.start(self.hub.online)

    async def stop(self) -> None:
        """Close the stores and the KDF's threads (the end of :meth:`start`)."""
        if self.presence is not None:
            await self.presence.close()
        await self.log.close()
        await self.credentials.close()
        await self.limiter.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def epoch(self) -> str:
        return self.log.state.epoch

    async def check(self) -> None:
        """Return when the log can take an append now; :class:`StoreError` saying why
        not (for ``/readyz``)."""
        await self.log.check()

    def online_here(self) -> list[str]:
        """Sorted names of the users with a session open on this node."""
        return self.hub.online()

    @property
    def pending_logins(self) -> int:
        """Logins waiting for, or in, the KDF."""
        return self._pending_logins

    def _outage(self, down: bool) -> None:
        """A shared store stopped (or started again) answering: tell every session."""
        if down and self.metrics is not None:
            self.metrics.store_outages.inc()
        self._emit(self.hub.announce(STORE_DOWN if down else STORE_BACK))

    def _committed(self, messages: Sequence[Message]) -> None:
        items = self.hub.route(messages)
        if items:
            self._emit(items)

    async def _in_pool(self, function: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def _cpu(self, function: Callable, *args):
        if self._offload is None:
            return function(*args)
        started = time.perf_counter()
        try:
            return await self._offload(function, *args)
        finally:
            if self.metrics is not None:
                self.metrics.kdf_wait_seconds.observe(time.perf_counter() - started)

    # -- sessions --------------------------------------------------------------------

    async def open(
        self,
        user: str,
        secret: str,
        handle: object,
        *,
        address: str = "",
        resume: tuple[str, int] | None = None,
        history: int = 0,
    ) -> tuple[Session, list[Outbound]]:
        """Authenticate (registering a new name), open a session and plan its replay.

        All or nothing: when this raises, no session is open and nothing is queued.
        The session then buffers live messages until :meth:`go_live`.

        Raises:
            Refusal: with the close code to send (bad name or secret, throttled, a cap,
                the store failing).
        """
        try:
            name = normalize_name(user)
        except ValueError as error:
            raise Refusal(str(error)) from None
        if not isinstance(secret, str) or not secret:
            raise Refusal("A senha deve ser um texto não vazio.")
        if resume is not None or history:
            if self._waiting_replays >= self.limits.max_pending_logins:
                raise Refusal(
                    "Servidor ocupado com outras retomadas: tente de novo em instantes.",
                    CloseCode.TRY_AGAIN_LATER,
                )
            rate = self.limits.replays_per_second
            if (
                address
                and rate
                and not await self._stored(
                    self.limiter.allow(f"resume:{address_key(address)}", rate, 5)
                )
            ):
                raise Refusal(
                    "Retomadas demais a partir do seu endereço: tente de novo em alguns segundos.",
                    CloseCode.TRY_AGAIN_LATER,
                )
        await self._authenticate(name, secret, address_key(address))
        arrived = not self.hub.is_online(name)
        session_id = self.hub.open(name, handle)
        if arrived and self.presence is not None:
            self.presence.changed()
        try:
            recovery = await self._read_bounded(name, resume, history)
            return self.hub.recover(session_id, recovery)
        except StoreError as error:
            self.close(session_id)
            raise Refusal(str(error), CloseCode.SERVICE_RESTART) from None
        except BaseException:
            self.close(session_id)
            raise

    def go_live(self, session_id: str) -> list[Outbound]:
        """What the session buffered since :meth:`open`; live delivery from now on.

        Raises:
            Refusal: (1013) the buffer overflowed; the session is closed.
        """
        user = self.hub.user_of(session_id)
        try:
            return self.hub.go_live(session_id)
        except Refusal:
            if self.presence is not None and not self.hub.is_online(user):
                self.presence.changed()
            raise

    def close(self, session_id: str) -> None:
        """Close a session (unknown ids are ignored)."""
        try:
            user = self.hub.user_of(session_id)
        except KeyError:
            return
        self.hub.close(session_id)
        if self.presence is not None and not self.hub.is_online(user):
            self.presence.changed()

    async def _read_bounded(
        self, user: str, resume: tuple[str, int] | None, history: int
    ) -> Recovery:
        if resume is None and not history:
            return await self._read_for(user, resume, history)
        if self._replays is None:
            self._replays = asyncio.Semaphore(self.limits.max_replays)
        self._waiting_replays += 1
        try:
            async with self._replays:
                return await self._read_for(user, resume, history)
        finally:
            self._waiting_replays -= 1

    async def _read_for(self, user: str, resume: tuple[str, int] | None, history: int) -> Recovery:
        """Do the read the hub says this session needs (:func:`resume_read`)."""
        read = resume_read(resume, self.log.state, history, self.log.retention)
        if read.after is not None:
            state, messages = await self.log.read_after(read.after)
        elif read.recent:
            state, messages = await self.log.recent(user, read.recent)
        else:
            state, messages = self.log.state, []
        return Recovery(resume, state, messages, self.log.retention)

    async def _authenticate(self, name: str, secret: str, address: str) -> None:
        throttled = self.limits.login_free is not None
        wait, keys = 0.0, ()
        if throttled:
            known = await self._stored(self.limiter.knows(name, address))
            keys = (f"addr:{address}",) if known else (f"name:{name}", f"addr:{address}")
            wait = await self._stored(self.limiter.login_wait(keys))
        if wait > 0:
            raise Refusal(
                f"Muitas tentativas com senha errada: tente de novo em {math.ceil(wait)} s.",
                CloseCode.THROTTLED,
            )
        if self._pending_logins >= self.limits.max_pending_logins:
            raise Refusal(
                "Servidor ocupado com outros logins: tente de novo em instantes.",
                CloseCode.TRY_AGAIN_LATER,
            )
        self._pending_logins += 1
        try:
            record = await self._stored(self.credentials.lookup(name))
            if record is None:
                record = await self._register(name, secret, address)
                if record is None:
                    if throttled:
                        await self._stored(self.limiter.remember(name, address))
                    self._registered.add(name)
                    return  # registered by this call
            if not await self._cpu(Scrypt.verify, secret, record):
                wait = 0.0
                if throttled:
                    await self._stored(self.limiter.login_failed(keys))
                    wait = await self._stored(self.limiter.login_wait(keys))
                # Past ``login_free`` failures in a row the next try must wait: say how
                # long (the reason stays within a close frame's 123 bytes).
                if wait > 0:
                    raise AuthError(
                        "Senha errada para este nome. Foram erros demais seguidos: a próxima "
                        f"tentativa só daqui a {math.ceil(wait)} s."
                    )
                raise AuthError(
                    "Senha errada para este nome: ele já está registrado com outra senha."
                )
            if throttled:
                await self._stored(self.limiter.login_succeeded(keys))
                await self._stored(self.limiter.remember(name, address))
            self._registered.add(name)
        finally:
            self._pending_logins -= 1

    async def _register(self, name: str, secret: str, address: str) -> str | None:
        """Register ``name``; None on success, else the record of whoever won the race."""
        per_minute = self.limits.registrations_per_minute
        if per_minute and not await self._stored(
            self.limiter.allow(f"register:{address}", per_minute / 60.0, per_minute)
        ):
            raise Refusal(
                "Nomes novos demais a partir deste endereço: tente de novo em um minuto.",
                CloseCode.NAME_LIMIT,
            )
        if await self._stored(self.credentials.count()) >= self.limits.max_users:
            raise Refusal(
                "O servidor atingiu o limite de usuários registrados: entre com um nome existente.",
                CloseCode.NAME_LIMIT,
            )
        record = await self._cpu(self.kdf.hash, secret)
        if await self._stored(self.credentials.register(name, record)):
            return None
        return await self._stored(self.credentials.lookup(name))

    @staticmethod
    async def _stored(call):
        try:
            return await call
        except StoreError as error:
            raise Refusal(str(error), CloseCode.SERVICE_RESTART) from None

    # -- lines -----------------------------------------------------------------------

    async def submit(
        self, session_id: str, text: str, *, address: str = "", charged: bool = False
    ) -> list[Outbound]:
        """Handle one line typed in a session; returns replies for that session only.

        A message is answered through the log: its echo to the sender, with its
        offset, and every delivery come from ``emit`` once it is committed. A line that
        is refused (over the rate limit, a command error, the store failing) gets one
        error item and keeps nothing.

        ``charged``: the caller already charged this frame to the rate (:meth:`spend`).

        Raises:
            KeyError: if the session is not open.
        """
        over = None if charged else self.spend(session_id, address)
        if over is not None:
            return over
        user = self.hub.user_of(session_id)
        try:
            command = parse_line(text)
            if isinstance(command, PrivateText) and not self._exists_here(command.to):
                if await self.credentials.lookup(command.to) is None:
                    raise CommandError(
                        f"O usuário '{command.to}' não existe: ninguém entrou com esse nome."
                    )
                self._registered.add(command.to)
            if isinstance(command, WhoQuery):
                names = ", ".join(await self._online())
                return [self.hub.reply(session_id, Kind.SYSTEM, f"Online agora: {names}.")]
            if self._shared_lines and not await self.limiter.allow(
                f"line:{user}", self.limits.max_rate, self.limits.burst
            ):
                return self._too_fast(session_id)  # over the user's rate on every node
            started = time.perf_counter()
            if isinstance(command, PublicText):
                kind = Kind.PUBLIC
                await self.log.append(kind, user, None, command.text)
            else:
                kind = Kind.PRIVATE
                await self.log.append(kind, user, command.to, command.text)
            if self.metrics is not None:
                self.metrics.store_seconds.observe(time.perf_counter() - started)
                self.metrics.stored.labels(kind.value).inc()
        except CommandError as error:
            return self.error(session_id, str(error))
        except StoreError as error:
            logger.warning("armazenamento falhou para %s: %s", session_id, error)
            return self.error(session_id, str(error))
        return []

    def awaits_store(self, text: str) -> bool:
        """Whether :meth:`submit` would await a store before it appends ``text``: a
        ``/msg`` to a name this node does not know to be registered (it is looked up)
        or ``/who`` with a shared presence. A pipelining caller waits for earlier lines
        first. Known names only grow, so a line judged not to await never does. A
        shared limiter counts every line in the store before its append, so then every
        line awaits (lines of one connection would otherwise pass the count out of
        order)."""
        if self._shared_lines:
            return True
        try:
            command = parse_line(text)
        except CommandError:
            return False
        if isinstance(command, PrivateText):
            return not self._exists_here(command.to)
        return isinstance(command, WhoQuery) and self.presence is not None

    def _exists_here(self, name: str) -> bool:
        """Whether ``name`` is known to be registered without asking the store."""
        return name in self._registered or self.hub.is_online(name)

    def spend(self, session_id: str, address: str = "") -> list[Outbound] | None:
        """Charge one frame of the session to its user's and its address's rate;
        None if allowed, else the error to answer (a flood of them is bounded by the
        server's read budget per connection).

        Raises:
            KeyError: if the session is not open.
        """
        user = self.hub.user_of(session_id)
        if self._lines is None:
            return None
        now = self._clock()
        if self._lines.allow((user,), now) and self._address_lines.allow(
            (address_key(address),), now
        ):
            return None
        return self._too_fast(session_id)

    def _too_fast(self, session_id: str) -> list[Outbound]:
        return self.error(
            session_id,
            (
                f"Devagar: limite de ritmo excedido (em média {self.limits.max_rate:g} "
                "mensagens por segundo por usuário); esta não foi enviada."
            ),
        )

    async def _online(self) -> list[str]:
        """This node's users, and with a shared presence every node's (StoreError when
        it cannot be read)."""
        if self.presence is None:
            return self.hub.online()
        return sorted(set(self.hub.online()) | set(await self.presence.online()))

    def error(self, session_id: str, text: str) -> list[Outbound]:
        """An error item for the session, if it is still open (a store await may have
        outlasted it)."""
        try:
            return [self.hub.reply(session_id, Kind.ERROR, text)]
        except KeyError:
            return []
