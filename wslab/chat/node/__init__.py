"""One chat node: the hub's rules over the stores, with the limits that keep one client
from hurting the others. Async (it awaits the stores) but owns no sockets.

The network adapter (:mod:`wslab.chat.net.service`) calls :meth:`ChatNode.open`,
:meth:`ChatNode.go_live`, :meth:`ChatNode.submit` and :meth:`ChatNode.close`, and writes
the :class:`Outbound` items they return; items for messages committed by the log (this
node's and, with a shared store, other nodes') reach the ``emit`` callback given to
:meth:`ChatNode.start`. The synchronous :class:`wslab.chat.model.chat.ChatModel` drives
the same node over the in-memory stores, so there is one implementation of the rules.

Rules enforced here, each a setting of :class:`Limits`:

- wrong secrets count against the name, the address (host) and its network; after
  ``login_free`` in a row, each next attempt waits twice as long (from 1 s up to 5
  min), refused with 4029. The count is taken before the secret is checked, in one
  atomic step of the limiter (:class:`.rules.ratelimit.LoginThrottle`): the name is
  charged at once (refunded if the secret is never checked), so guesses at one name
  sent together from any number of addresses and nodes get ``login_free + 1`` checks,
  not one each; a host or network that has failed lets one attempt through at a
  time, while people behind one NAT still log in together. The name's delay holds for
  every address (a guesser with many addresses is slowed all the same), except one
  from which this name logged in before: there only the address's own count applies,
  so its owner is not locked out by someone else's guesses;
- new names: at most ``registrations_per_minute`` per address and
  ``registrations_per_minute_network`` per network (4003), and ``max_users`` in all
  (4003; names registered and never used again expire after ``unused_name_days``, so
  the cap cannot be filled for good); a name that looks like a registered one (the
  same UTS #39 skeleton) is refused with 4000;
- secrets are hashed off the event loop, at most ``kdf_workers`` at a time, in the
  order of :mod:`.kdfpool`: a registered name from a network it logged in from before
  first, then other registered names, then new names, the networks taking turns in
  each, at most ``max_pending_logins`` waiting, each at most ``login_wait`` seconds
  (1013 beyond, the lowest first). While every worker is busy, new names also spend a
  global budget (``new_names_per_minute``, bursts of as many) and resumes another
  (``replays_in_all_per_second``, bursts of 10 times it): an ordinary rush of first
  logins on a server that is not busy never meets them;
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
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..errors import AuthError, CloseCode, Refusal, ReusedId, StoreError
from ..rules.addresses import PREFIXES, Prefixes, address_key, network_key
from ..rules.commands import CommandError, PrivateText, PublicText, WhoQuery, parse_line
from ..rules.hub import Hub, Recovery, resume_read
from ..rules.kdf import SCRYPT, Scrypt
from ..rules.logins import Tier
from ..rules.messages import H, Kind, LogState, Message, Outbound, Session, answering
from ..rules.names import normalize_name, skeleton
from ..rules.ratelimit import KeyedBuckets, TokenBucket
from ..stores import CredentialStore, Limiter, MessageLog, Presence
from ..stores.memory import MemoryLimiter
from .kdfpool import Busy, KdfPool
from .replay import Replay

logger = logging.getLogger(__name__)

__all__ = ["ChatNode", "Count", "Labelled", "Limits", "NodeMetrics", "Observe", "Offload"]

T = TypeVar("T")
Emit = Callable[[list[Outbound[H]]], None]


class Offload(Protocol):
    """Runs ``function(*args)`` off the event loop; awaiting the result gives its value."""

    def __call__(self, function: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


class Count(Protocol):
    """A counter (prometheus_client's ``Counter``, or one that counts nothing)."""

    def inc(self, amount: float = 1) -> None: ...


class Observe(Protocol):
    """A histogram (prometheus_client's ``Histogram``, or one that counts nothing)."""

    def observe(self, amount: float) -> None: ...


class Labelled(Protocol):
    """A counter with labels: ``labels(value)`` is the counter of that series."""

    def labels(self, *values: str) -> Count: ...


class NodeMetrics(Protocol):
    """What the node counts; the network's :class:`wslab.chat.net.metrics.Metrics` is
    one (a protocol, so the node imports nothing of the network)."""

    @property
    def stored(self) -> Labelled: ...
    @property
    def store_seconds(self) -> Observe: ...
    @property
    def kdf_wait_seconds(self) -> Observe: ...
    @property
    def store_outages(self) -> Count: ...


STORE_DOWN = (
    "O servidor perdeu o contato com o armazenamento compartilhado (Redis): por "
    "enquanto nenhuma mensagem é guardada nem entregue, e cada linha que você enviar "
    "recebe um erro na hora e não é enviada depois. Sua sessão continua aberta."
)
ALREADY_STORED = "Esta mensagem já estava guardada (offset {}): não foi guardada de novo."

STORE_DOWN_LINE = (
    "O armazenamento compartilhado (Redis) está fora do ar: esta linha não foi enviada "
    "e não será; envie de novo quando ele voltar."
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
    registrations_per_minute: int | None = 10  # None: no cap per address (nor network)
    registrations_per_minute_network: int = 200  # an ordinary rush of 200 behind one /24 passes
    max_users: int = 100_000
    unused_name_days: float = 30.0  # a name registered and never used again expires
    kdf_workers: int = 2
    max_pending_logins: int = 64
    login_wait: float = 10.0  # seconds a login waits for the KDF at most
    new_names_per_minute: int = 200  # in all, while the KDF is busy (bursts of as many; 0: none)
    replays_in_all_per_second: float = 10.0  # in all, while the KDF is busy (bursts x10)
    prefixes: Prefixes = PREFIXES  # what counts as one host and one network
    max_replays: int = 2  # history reads at once (each may be megabytes); others wait
    replays_per_second: float | None = 1.0  # per address, bursts of 5 (None: no limit)


class ChatNode(Generic[H]):
    """The hub, the stores and the limits of one node.

    Args:
        log, credentials: the stores (:mod:`wslab.chat.stores`).
        kdf: cost of new secret records (verification uses each record's own cost).
        limits: see :class:`Limits`.
        offload: ``"threads"`` (the default) hashes secrets in a :class:`KdfPool` of
            ``limits.kdf_workers``; ``None`` runs them inline (the synchronous model).
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
        offload: str | None = "threads",
        clock: Callable[[], float] = time.monotonic,
        hub: Hub[H] | None = None,
        presence: Presence | None = None,
        limiter: Limiter | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.log = log
        # The network's collectors (wslab.chat.net.metrics.Metrics), through a protocol
        # so the node imports nothing of the network; None counts nothing.
        self.metrics = metrics
        self.presence = presence
        self.credentials = credentials
        self.kdf = kdf
        self.limits = limits
        self.hub: Hub[H] = hub if hub is not None else Hub()
        self._clock = clock
        self._emit: Emit[H] = lambda items: None
        self._pool = (
            KdfPool(limits.kdf_workers, limits.max_pending_logins, limits.login_wait)
            if offload == "threads"
            else None
        )
        now = clock()
        self._new_names = TokenBucket(
            max(limits.new_names_per_minute, 1) / 60.0, max(limits.new_names_per_minute, 1), now
        )
        self._replays_in_all = TokenBucket(
            limits.replays_in_all_per_second,
            max(1, round(10 * limits.replays_in_all_per_second)),
            now,
        )
        self._expired_at = -math.inf  # when unused names were last expired (clock)
        self._replaying: set[Replay[H]] = set()  # replays not yet written and closed
        self._store_down = False  # a shared store stopped answering (see _outage)
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

    async def start(self, emit: Emit[H], lost: Callable[[str], None] | None = None) -> None:
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
            self._pool.close()

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
        return 0 if self._pool is None else self._pool.busy + self._pool.waiting

    def _outage(self, down: bool) -> None:
        """A shared store stopped (or started again) answering: tell every session.
        While it is down, lines are refused at once (:meth:`submit`), as the notice
        says, rather than left to wait for the store and be stored after it."""
        self._store_down = down
        if down and self.metrics is not None:
            self.metrics.store_outages.inc()
        self._emit(self.hub.announce(STORE_DOWN if down else STORE_BACK))

    def _committed(self, messages: Sequence[Message]) -> None:
        items = self.hub.route(messages)
        if items:
            self._emit(items)

    # -- sessions --------------------------------------------------------------------

    async def open(
        self,
        user: str,
        secret: str,
        handle: H,
        *,
        address: str = "",
        resume: tuple[str, int] | None = None,
        history: int = 0,
    ) -> tuple[Session, Replay[H]]:
        """Authenticate (registering a new name), open a session and plan its replay.

        All or nothing: when this raises, no session is open and nothing is queued.
        The session then buffers live messages until :meth:`go_live`. The replay is
        read lazily (:class:`Replay`): iterate it (or :meth:`Replay.collect`) and
        close it.

        Raises:
            Refusal: with the close code to send (bad name or secret, throttled, a cap,
                the store failing or holding a corrupt record).
        """
        name = normalize_name(user)  # BadName: a Refusal (4000)
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
                    self.limiter.allow(
                        f"resume:{address_key(address, self.limits.prefixes)}", rate, 5
                    )
                )
            ):
                raise Refusal(
                    "Retomadas demais a partir do seu endereço: tente de novo em alguns segundos.",
                    CloseCode.TRY_AGAIN_LATER,
                )
            if (
                self._pool is not None
                and self._pool.contended
                and not self._replays_in_all.allow(self._clock())
            ):
                raise Refusal(
                    "Retomadas demais no servidor agora: tente de novo em alguns segundos.",
                    CloseCode.TRY_AGAIN_LATER,
                )
        await self._authenticate(name, secret, address)
        arrived = not self.hub.is_online(name)
        session_id = self.hub.open(name, handle)
        if arrived and self.presence is not None:
            self.presence.changed()
        try:
            if (resume is not None or history) and (
                len(self._replaying) >= self.limits.max_pending_logins
            ):
                raise Refusal(
                    "Servidor ocupado com outras retomadas: tente de novo em instantes.",
                    CloseCode.TRY_AGAIN_LATER,
                )
            recovery = await self._read_bounded(name, resume, history)
            session, items = self.hub.recover(session_id, recovery)
            return session, Replay(self, items, recovery.state.newest)
        except StoreError as error:
            self.close(session_id)
            raise Refusal(str(error), CloseCode.SERVICE_RESTART) from None
        except BaseException:
            self.close(session_id)
            raise

    def replay_load(self) -> tuple[int, int]:
        """(replays in progress, items they hold now): at most ``max_pending_logins``
        replays, each holding at most a page plus what the hub buffered for it."""
        return len(self._replaying), sum(r.held for r in self._replaying)

    def go_live(self, session_id: str) -> list[Outbound[H]]:
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
        if not self.hub.is_open(session_id):
            return
        user = self.hub.user_of(session_id)
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

    async def _read_page(self, after: int, limit: int) -> tuple[LogState, list[Message]]:
        """One page of a lazy replay, under the limit of history reads at once."""
        if self._replays is None:
            self._replays = asyncio.Semaphore(self.limits.max_replays)
        async with self._replays:
            return await self.log.read_after(after, limit)

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
        prefixes = self.limits.prefixes
        host, network = address_key(address, prefixes), network_key(address, prefixes)
        throttled = self.limits.login_free is not None
        known = False
        charged: tuple[str, ...] = ()
        held: tuple[str, ...] = ()
        if throttled:
            known = await self._stored(self.limiter.knows(name, host))
            # The name is charged before the KDF (one owner, one login at a time); the
            # host and its network hold the attempt in flight (many people behind one
            # NAT log in together): see LoginThrottle.
            charged = () if known else (f"name:{name}",)
            held = (f"addr:{host}",) if known else (f"addr:{host}", f"addr:{network}")
            wait = await self._stored(self.limiter.login_attempt(charged, held))
            if wait > 0:
                raise Refusal(
                    f"Muitas tentativas com senha errada: tente de novo em {math.ceil(wait)} s.",
                    CloseCode.THROTTLED,
                )
        outcome = "unchecked"
        try:
            record = await self._stored(self.credentials.lookup(name))
            if record is None:
                record = await self._register(name, secret, host, network)
            if record is not None:  # a registered name (or one registered meanwhile)
                tier = Tier.RETURNING if known else Tier.KNOWN
                # A corrupt record: BadRecord, a StoreError, refused like a store failing.
                if not await self._stored(self._kdf(tier, network, Scrypt.verify, secret, record)):
                    outcome = "settled"
                    wait = 0.0
                    if throttled:
                        wait = await self._settle("wrong", name, host, charged, held)
                    # Past ``login_free`` failures in a row the next try must wait: say
                    # how long (the reason stays within a close frame's 123 bytes).
                    if wait > 0:
                        raise AuthError(
                            "Senha errada para este nome. Foram erros demais seguidos: a próxima "
                            f"tentativa só daqui a {math.ceil(wait)} s."
                        )
                    raise AuthError(
                        "Senha errada para este nome: ele já está registrado com outra senha."
                    )
            outcome = "right"
            if record is not None:
                await self._stored(self.credentials.used(name))
            self._registered.add(name)
        finally:
            if throttled and outcome != "settled":
                await self._settle(outcome, name, host, charged, held)

    async def _settle(
        self,
        outcome: str,
        name: str,
        host: str,
        charged: Collection[str],
        held: Collection[str],
    ) -> float:
        """Settle a login attempt in the limiter: a right secret clears the name's and
        the host's failures (not the network's: a login to one's own account must not
        wipe the guesses made from the rest of it); a wrong one lands on the held keys
        (the name was charged already), and the seconds the next try must wait are
        returned; one never checked is taken back."""
        limiter = self.limiter
        if outcome == "right":
            await self._stored(limiter.login_succeeded((*charged, f"addr:{host}")))
            await self._stored(limiter.login_release(held))
            await self._stored(limiter.remember(name, host))
        elif outcome == "wrong":
            return await self._stored(limiter.login_failed(charged, held))
        else:
            with contextlib.suppress(StoreError):
                await limiter.login_refund(charged)
                await limiter.login_release(held)
        return 0.0

    async def _register(self, name: str, secret: str, host: str, network: str) -> str | None:
        """Register ``name``; None on success, else the record of whoever won the race.

        Raises:
            Refusal: over a registration cap (4003), a look-alike of a registered name
                (4000), the KDF too busy (1013).
        """
        per_minute = self.limits.registrations_per_minute
        if per_minute:
            for key, limit, where in (
                (f"register:{host}", per_minute, "deste endereço"),
                (f"register:{network}", self.limits.registrations_per_minute_network, "desta rede"),
            ):
                if limit and not await self._stored(self.limiter.allow(key, limit / 60.0, limit)):
                    raise Refusal(
                        f"Nomes novos demais a partir {where}: tente de novo em um minuto.",
                        CloseCode.NAME_LIMIT,
                    )
        if (
            self._pool is not None
            and self._pool.contended
            and self.limits.new_names_per_minute
            and not self._new_names.allow(self._clock())
        ):
            raise Refusal(
                "Cadastros demais neste momento: tente de novo em instantes.",
                CloseCode.TRY_AGAIN_LATER,
            )
        if await self._stored(self.credentials.count()) >= self.limits.max_users and (
            not await self._expire_unused()
            or await self._stored(self.credentials.count()) >= self.limits.max_users
        ):
            raise Refusal(
                "O servidor atingiu o limite de usuários registrados: entre com um nome existente.",
                CloseCode.NAME_LIMIT,
            )
        shape = skeleton(name)
        holder = await self._stored(self.credentials.similar(shape))
        if holder is None:
            record = await self._kdf(Tier.NEW, network, self.kdf.hash, secret)
            holder = await self._stored(self.credentials.register(name, shape, record))
            if holder is None:
                return None
        if holder == name:  # registered meanwhile by someone else
            return await self._stored(self.credentials.lookup(name))
        raise Refusal(
            f"O nome '{name}' se parece demais com '{holder}', que já existe: escolha outro.",
            CloseCode.BAD_HELLO,
        )

    async def _expire_unused(self) -> int:
        """Forget names registered and never used again (at most once a minute);
        how many."""
        now = self._clock()
        if now - self._expired_at < 60.0:
            return 0
        self._expired_at = now
        gone = await self._stored(self.credentials.expire(self.limits.unused_name_days * 86400))
        if gone:
            logger.info("%d nomes registrados e nunca mais usados expiraram", gone)
        return gone

    async def _kdf(self, tier: Tier, network: str, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` (scrypt) in the KDF pool, in ``tier``'s turn; inline
        without a pool (the synchronous router)."""
        if self._pool is None:
            return function(*args)
        started = time.perf_counter()
        try:
            return await self._pool.run(tier, network, function, *args)
        except Busy:
            raise Refusal(
                "Servidor ocupado com outros logins: tente de novo em instantes.",
                CloseCode.TRY_AGAIN_LATER,
            ) from None
        finally:
            if self.metrics is not None:
                self.metrics.kdf_wait_seconds.observe(time.perf_counter() - started)

    @staticmethod
    async def _stored(call: Awaitable[T]) -> T:
        try:
            return await call
        except StoreError as error:
            raise Refusal(str(error), CloseCode.SERVICE_RESTART) from None

    # -- lines -----------------------------------------------------------------------

    async def submit(
        self,
        session_id: str,
        text: str,
        *,
        client_id: str | None = None,
        address: str = "",
        charged: bool = False,
    ) -> list[Outbound[H]]:
        """Handle one line typed in a session; returns replies for that session only.

        A message is answered through the log: its echo to the sender, with its
        offset, and every delivery come from ``emit`` once it is committed. A line that
        is refused (over the rate limit, a command error, the store failing) gets one
        error item and keeps nothing. A line sent again with its id whose first copy
        was already delivered gets one system item (:data:`ALREADY_STORED`).

        ``client_id``: the line's id (:mod:`wslab.chat.rules.wire`): kept with the
        message, so a line sent again is stored once, and carried by the replies.
        ``charged``: the caller already charged this frame to the rate (:meth:`spend`).

        Raises:
            UnknownSession: (a ``KeyError`` too) if the session is not open.
        """
        over = None if charged else self.spend(session_id, address)
        if over is not None:
            return answering(over, client_id)
        return answering(await self._submit(session_id, text, client_id), client_id)

    async def _submit(self, session_id: str, text: str, client_id: str | None) -> list[Outbound[H]]:
        user = self.hub.user_of(session_id)
        try:
            command = parse_line(text)
            if self._store_down and not isinstance(command, WhoQuery):
                return self.error(session_id, STORE_DOWN_LINE)
            if isinstance(command, PrivateText) and not self._exists_here(command.to):
                if await self.credentials.lookup(command.to) is None:
                    raise CommandError(
                        f"O usuário '{command.to}' não existe: ninguém entrou com esse nome."
                    )
                self._registered.add(command.to)
            if isinstance(command, WhoQuery):
                names = ", ".join(await self._online())
                return [self.hub.reply(session_id, Kind.SYSTEM, f"Online agora: {names}.")]
            rate = self.limits.max_rate
            if (
                self._shared_lines
                and rate is not None
                and not await self.limiter.allow(f"line:{user}", rate, self.limits.burst)
            ):
                return self._too_fast(session_id)  # over the user's rate on every node
            started = time.perf_counter()
            before = self.log.state
            if isinstance(command, PublicText):
                kind = Kind.PUBLIC
                offset = await self.log.append(kind, user, None, command.text, client_id)
            else:
                kind = Kind.PRIVATE
                offset = await self.log.append(kind, user, command.to, command.text, client_id)
            if offset <= before.newest and self.log.state.epoch == before.epoch:
                # Sent again (its id) after its first copy was delivered: that copy's
                # echo may never reach this session (it resumed past it, or with a gap),
                # so the line is answered here. (A new epoch restarts the offsets.)
                return [self.hub.reply(session_id, Kind.SYSTEM, ALREADY_STORED.format(offset))]
            if self.metrics is not None:
                self.metrics.store_seconds.observe(time.perf_counter() - started)
                self.metrics.stored.labels(kind.value).inc()
        except (CommandError, ReusedId) as error:
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

    def spend(self, session_id: str, address: str = "") -> list[Outbound[H]] | None:
        """Charge one frame of the session to its user's and its address's rate;
        None if allowed, else the error to answer (a flood of them is bounded by the
        server's read budget per connection).

        Raises:
            UnknownSession: (a ``KeyError`` too) if the session is not open.
        """
        user = self.hub.user_of(session_id)
        if self._lines is None or self._address_lines is None:  # no rate limit
            return None
        now = self._clock()
        if self._lines.allow((user,), now) and self._address_lines.allow(
            (address_key(address, self.limits.prefixes),), now
        ):
            return None
        return self._too_fast(session_id)

    def _too_fast(self, session_id: str) -> list[Outbound[H]]:
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

    def error(self, session_id: str, text: str) -> list[Outbound[H]]:
        """An error item for the session, if it is still open (a store await may have
        outlasted it)."""
        if not self.hub.is_open(session_id):
            return []
        return [self.hub.reply(session_id, Kind.ERROR, text)]
