"""``otaforge demo`` and what it runs on.

* :mod:`.run` -- the seed's update flow end to end on built-in defaults, as values;
* :mod:`.steps` -- its steps after setup, each ending with one verdict;
* :mod:`.local_server` -- a real update server on loopback HTTPS inside this process (also
  used by the end-to-end tests and the benchmarks).
"""
