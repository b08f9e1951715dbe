"""Fleet rehearsal: N emulated ESP32s with the real update agent against a real server.

:func:`otaforge.fleet.run.simulate` runs one :class:`~otaforge.fleet.run.SimSpec`; the pieces
are the scenario (:mod:`.spec`), the devices (:mod:`.population`), their network
(:mod:`.network`), the event loop (:mod:`.engine`), the rollout driver (:mod:`.driver`), the
result (:mod:`.result`) and the HTML report (:mod:`.report`).
"""
