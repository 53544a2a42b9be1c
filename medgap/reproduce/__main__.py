"""``python -m medgap.reproduce PAPER RUN_NAME --budget B --seeds N --work-dir W``: one run of a reproduction (what
``medgap reproduce --jobs N`` starts in each worker process)."""

from medgap.reproduce import _worker_main

_worker_main()
