"""The chat as one synchronous object (:class:`ChatModel`) for notebook 04, and a seeded
simulation of users who connect, talk and drop (:mod:`.simulation`)."""

from .chat import ChatModel

__all__ = ["ChatModel"]
