import sys

from turtle_core.cli.main import main

sys.exit(main())
