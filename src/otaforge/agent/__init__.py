"""The device-side update agent: the seed's OTA flow on an (emulated) ESP32.

Layered like python-tuf's ngclient:

* :mod:`.decision` -- the pure core: device facts + offer + image bytes -> plan or refusal;
* :mod:`.https_ota` / :mod:`.ota_http` -- esp_https_ota's begin/perform/finish state machine
  (resumption, partial download) over the network seam and ``esp_ota_*``;
* :mod:`.fetcher` -- the one-method network seam; :mod:`.httpx_fetcher` its pinned-TLS
  implementation; :mod:`.server_api` -- the update server's device API;
* :mod:`.boot` + :mod:`.updater` -- the orchestrator (boot-time verification, check-in,
  download, reports), with :mod:`.state` for what survives resets and :mod:`.selftest` for
  the self-test under the watchdog;
* :mod:`.session` -- a device kept in files between runs (``otaforge device run``).
"""
