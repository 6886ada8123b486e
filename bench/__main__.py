"""``python -m bench``: the daemon benchmark (``bench/daemon.py``)."""

from bench.daemon import main

raise SystemExit(main())
