"""``python -m bench`` (``make bench``): the whole benchmark (``bench/harness.py``).

``python -m bench.daemon`` is the daemon-only benchmark with profiling options.
"""

from bench.harness import main

raise SystemExit(main())
