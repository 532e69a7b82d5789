"""`python -m runner.smoke ...`: the smoke subcommand without the rest of the CLI."""

import argparse
import sys

from runner import smoke
from runner.commands.smoke_cmd import add_arguments, request_from_args

parser = argparse.ArgumentParser(prog="python -m runner.smoke", description=smoke.__doc__.splitlines()[0])
add_arguments(parser)
parser.add_argument("--dry-run", action="store_true", help="print the plan (processes, env) and run nothing")
sys.exit(smoke.run(request_from_args(parser.parse_args())))
