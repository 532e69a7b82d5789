"""`python -m runner.smoke ...`: the smoke subcommand without the rest of the CLI."""

import argparse
import sys

from runner import smoke

parser = argparse.ArgumentParser(prog="python -m runner.smoke", description=smoke.__doc__.splitlines()[0])
smoke.add_arguments(parser)
parser.add_argument("--dry-run", action="store_true", help="print the plan (processes, env) and run nothing")
sys.exit(smoke.run(parser.parse_args()))
