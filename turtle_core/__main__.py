import sys

from turtle_core.cli import main

sys.exit(main())
