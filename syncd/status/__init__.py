"""The status socket and the metrics endpoint: the wire protocol
(:mod:`.protocol`), the server (:mod:`.server`) and its client (:mod:`.client`),
the daemon's answers (:mod:`.handler`), health (:mod:`.health`), counters and
their Prometheus form (:mod:`.metrics`, :mod:`.prometheus`) and the rendering
of ``syncd status`` (:mod:`.render`).

Nothing is re-exported here, so ``syncd status`` loads only the client side.
"""
