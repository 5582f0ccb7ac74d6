"""The chat as one synchronous object (:class:`ChatRouter`) for notebook 04, and a seeded
simulation of users who connect, talk and drop (:mod:`.simulation`)."""

from .router import ChatRouter

__all__ = ["ChatRouter"]
