"""The worker daemon: `python worker_main.py --url URL --pool NAME --concurrency N --import MODULE ...`.

The same as `python -m redispool worker ...` and the console script `redispool worker ...`.
"""
import sys

from redispool.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
