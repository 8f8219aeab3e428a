import sys

from mmexplore.cli import main

sys.exit(main())
