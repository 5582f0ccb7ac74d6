"""The chat's rules, pure (sans-I/O): no asyncio, sockets, clocks of their own or stores.

- :mod:`.messages`: messages, notices, the items the hub hands out, sessions;
- :mod:`.hub`: who receives what, and what a resume gets;
- :mod:`.commands`, :mod:`.names`, :mod:`.text`: what a user may type and be called;
- :mod:`.wire`: the JSON protocol; :mod:`.ratelimit`: token buckets and the login
  throttle; :mod:`.kdf`: stored secrets; :mod:`.addresses`: how addresses are counted.

``tests/chat/test_layers.py`` fails if a module here imports asyncio, websockets,
sqlite3, redis or the stores.
"""
