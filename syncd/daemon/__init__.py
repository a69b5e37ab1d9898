"""The long-running daemon: its start-up, reload and shutdown (:mod:`.runtime`),
the work loops (:mod:`.scheduler`), its answers on the status socket
(:mod:`.service`), systemd's notify protocol (:mod:`.systemd`) and the
one-daemon-per-ledger lock (:mod:`.lock`).

Nothing is re-exported here, so a command that needs only the lock (``syncd
once``, ``syncd unpark``) does not load the daemon's runtime.
"""
