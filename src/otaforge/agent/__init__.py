"""The device-side update agent: the seed's OTA flow on an (emulated) ESP32.

Layered like python-tuf's ngclient, composed rather than inherited:

* :mod:`.decision` -- the pure core: device facts + offer + image bytes -> plan or refusal;
* :mod:`.esp_https_ota` -- esp_https_ota's begin/perform/finish API, over
  :mod:`.ota_requests` (the handle and the HTTP requests: plain, resumed, partial ranges);
* :mod:`.fetcher` -- the one-method network seam; :mod:`.httpx_fetcher` its pinned-TLS
  implementation; :mod:`.server_api` -- the update server's device API;
* :mod:`.updater` -- the agent, composing :mod:`.probe` (reads the device), :mod:`.boot`
  (boot-time verification), :mod:`.download` (one download attempt) and :mod:`.reporting`
  (timeline and server reports); :mod:`.results` holds what they return;
* :mod:`.state` -- what survives resets; :mod:`.selftest` -- the self-test under the watchdog;
* :mod:`.device_files` -- a device kept in files between runs (``otaforge device run``).

Wire vocabulary (report states, refusal codes, bodies, HTTP errors) is
:mod:`otaforge.protocol`, shared with the server.
"""
