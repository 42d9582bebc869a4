import sys

from vpsmon.cli.main import main

sys.exit(main())
