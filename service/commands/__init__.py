"""The `rollguard` subcommands, one module each (service/cli.py dispatches to them).

Each module's ``main(argv)`` parses its arguments and returns the exit code; what they share
(settings with the one-line error, exit codes, --log-level) is in :mod:`service.commands.base`.
"""
