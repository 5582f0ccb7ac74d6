"""An independent check of the chat under faults, in the manner of Jepsen: clients that
record every operation (:mod:`.clients`) and a checker of their histories against the
final log (:mod:`.checker`). Neither imports the chat's own code: the checker knows the
wire protocol and the log's keys in Valkey, and re-states the one rule it needs (who may
see a message) from the protocol's documentation, so a bug in the server's rules cannot
hide itself from it."""
