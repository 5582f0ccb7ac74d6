"""wslab: a study of real-time communication with WebSockets.

Pure protocol and routing logic lives here beside thin I/O adapters; the notebooks
in notebooks/ narrate and call it.
"""
