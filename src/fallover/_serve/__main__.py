"""One gateway worker, started by ``fallover serve --workers N`` (it binds with SO_REUSEPORT)."""

import argparse
import sys

from ._run import main

parser = argparse.ArgumentParser(prog="python -m fallover._serve")
parser.add_argument("--config")
parser.add_argument("--host", required=True)
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()
sys.exit(main(config_path=args.config, host=args.host, port=args.port, workers=1, reuse_port=True))
