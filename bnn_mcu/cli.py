"""bnn-mcu command line (filled in as the pipeline lands)."""

import sys


def main(argv=None) -> int:
    print("bnn-mcu: under construction", file=sys.stderr)
    return 2
