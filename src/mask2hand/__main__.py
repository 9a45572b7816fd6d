import sys

from mask2hand.cli import main

sys.exit(main())
