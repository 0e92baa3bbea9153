"""``python -m backprop_client``: the CLI."""

from backprop_client.cli import main

raise SystemExit(main())
