import sys

from vitssl.cli.main import main

sys.exit(main())
