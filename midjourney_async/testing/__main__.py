"""``python -m midjourney_async.testing``: run an emulator until SIGINT/SIGTERM."""

from midjourney_async.testing._main import main

raise SystemExit(main())
