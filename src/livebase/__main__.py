import sys

from livebase.cli import main

sys.exit(main())
