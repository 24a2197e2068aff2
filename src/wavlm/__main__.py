"""`python -m wavlm` runs the command-line interface."""
from wavlm.cli import main

raise SystemExit(main())
