"""Real ESP-IDF application code on the emulated ESP32.

* :mod:`~otaforge.firmware.project` reads an ESP-IDF project (CMake component registrations,
  Kconfig defaults, ``sdkconfig.defaults``) into a :class:`~otaforge.firmware.project.Project`;
* :mod:`~otaforge.firmware.build` compiles it with the host C compiler against otaforge's
  ESP-IDF API layer (``host/include``, ``host/src``) and writes an app image whose
  ``app_elf_sha256`` names the host program in the build cache;
* :mod:`~otaforge.firmware.runner` boots the emulated device and runs the booted image's
  program in a fresh process per boot, serving its every flash/OTA/eFuse/NVS/HTTP call
  (:mod:`~otaforge.firmware.serve`) over the frames of :mod:`otaforge.formats.fw_frame`.
"""
