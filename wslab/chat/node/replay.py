"""A new session's replay, read from the log a page at a time (see :class:`Replay`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Generic, cast

from ..errors import CloseCode, Refusal, StoreError
from ..rules.messages import H, Message, Outbound

if TYPE_CHECKING:
    from . import ChatNode

__all__ = ["BEHIND", "PAGE", "Replay"]

PAGE = 32  # messages of a replay held at once (at most 32 x 16 KiB = 512 KiB)
BEHIND = (
    "Sua retomada ficou para trás: o histórico seguiu adiante enquanto ela era lida. "
    "Reconecte e retome do último offset."
)


class Replay(Generic[H]):
    """A new session's first items, read from the log a page at a time.

    The plan (the notice, which offsets to replay, whether it recovered) is made once,
    by the hub, over one read; but only the first :data:`PAGE` messages are kept, and
    of the others only their offsets: each next page is read again from the log
    (``read_after(last, PAGE)``, under the node's limit of reads at once) when the
    caller has written the previous one. So a client that does not read pins at most
    one page, and all replays together hold at most ``max_pending_logins`` pages (the
    node refuses more with 1013): 64 x 512 KiB = 32 MiB with the defaults, besides
    the ``max_replays`` whole reads in progress (2 x ``retention`` messages). Live
    messages that arrive meanwhile wait in the hub (``max_buffer``) and come after.

    A message that left the history between two pages (the client read too slowly)
    ends the replay with :class:`Refusal` (1013): the client resumes from its last
    offset and is told what it lost.
    """

    def __init__(self, node: ChatNode[H], items: list[Outbound[H]], upto: int) -> None:
        replayed = [i for i, item in enumerate(items) if item.replayed]
        first, last = (replayed[0], replayed[-1] + 1) if replayed else (len(items), len(items))
        self._node = node
        self._head = items[: min(last, first + PAGE)]
        # The hub's replayed run holds messages only (Hub.recover).
        self._offsets = [cast(Message, item.item).offset for item in items[first + PAGE : last]]
        self._tail = items[last:]
        self._handles = items[first].handles if replayed else ()
        self._upto = upto
        self.held = len(self._head) + len(self._tail)  # items referenced now
        if items:
            node._replaying.add(self)

    def __len__(self) -> int:
        """Items it will yield in all."""
        return len(self._head) + len(self._offsets) + len(self._tail)

    async def __aiter__(self) -> AsyncIterator[Outbound[H]]:
        try:
            for item in self._head:
                yield item
            self._head = []
            while self._offsets:
                page = await self._page()
                self.held = len(page) + len(self._tail)
                for item in page:
                    yield item
            for item in self._tail:
                yield item
        finally:
            self.close()

    async def collect(self) -> list[Outbound[H]]:
        """Every item at once (the synchronous model, whose stores never suspend)."""
        return [item async for item in self]

    def close(self) -> None:
        """Forget what is left (the caller stopped writing)."""
        self._offsets, self._head, self._tail = [], [], []
        self.held = 0
        self._node._replaying.discard(self)

    async def _page(self) -> list[Outbound[H]]:
        node, wanted = self._node, self._offsets[:PAGE]
        try:
            state, messages = await node._read_page(wanted[0] - 1, PAGE)
        except StoreError as error:
            raise Refusal(str(error), CloseCode.SERVICE_RESTART) from None
        if state.oldest > wanted[0]:
            raise Refusal(BEHIND, CloseCode.TRY_AGAIN_LATER)
        keep = set(wanted)
        found = [m for m in messages if m.offset in keep]
        if not found:
            raise Refusal(BEHIND, CloseCode.TRY_AGAIN_LATER)
        del self._offsets[: len([o for o in wanted if o <= found[-1].offset])]
        return [Outbound(m, self._handles, replayed=True) for m in found]
