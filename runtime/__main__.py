import sys

from pocketstack.cli import main

sys.exit(main())
