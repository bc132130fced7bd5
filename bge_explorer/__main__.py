import sys

from bge_explorer.cli.commands import main

sys.exit(main())
