"""`python3 -m service.devstack fetch|up|down|env`: the same as `rollguard devstack` (.ci/run uses it)."""
import sys

from service.commands.devstack import main

sys.exit(main(sys.argv[1:]))
