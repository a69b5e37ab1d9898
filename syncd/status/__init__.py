"""The status socket and the metrics endpoint, as a client and a server see them:
the wire protocol (:mod:`.protocol`), the socket server (:mod:`.server`) and
its client (:mod:`.client`), the rendering of ``syncd status``
(:mod:`.render`), the health verdict (:mod:`.health`), counters
(:mod:`.metrics`) and their Prometheus form and endpoint (:mod:`.prometheus`,
:mod:`.endpoint`).

What the daemon answers is built by :mod:`syncd.daemon.service`, which reads
the running scheduler: this package knows nothing of the daemon, so commands
that only talk to it (``syncd status``, ``syncd explain``) stay below it.
Nothing is re-exported here, so ``syncd status`` loads only the client side.
"""
