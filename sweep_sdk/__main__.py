"""``python -m sweep_sdk``: the same command line as the ``sweep`` console script."""

from sweep_sdk.cli import main

raise SystemExit(main())
