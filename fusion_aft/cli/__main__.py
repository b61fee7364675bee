import sys

from fusion_aft.cli import main

sys.exit(main())
