"""Parte 2 of the test: a client for the test's WebSocket server and its local stand-ins.

- :mod:`.provenance`: the recorded message and where it comes from (imports nothing);
- :mod:`.result`: what an attempt produced (``FetchResult``) and how it failed (``Failure``);
- :mod:`.client`: ``fetch_message``, ``live_attempt``, ``fetch_or_replica``;
- :mod:`.tap`: sockets that keep the bytes of the handshake and honour a deadline;
- :mod:`.replica`: a local server that sends the recorded message;
- :mod:`.badservers`: local servers that fail on purpose, one named way each;
- :mod:`.minimal`: the smallest program that answers Parte 2 (shown in the README);
- :mod:`.answer`: the README's answer, written from a run;
- :mod:`.cli`: ``python -m wslab.challenge``.

Nothing is imported here, so reading the provenance loads no WebSocket or TLS library.
"""
