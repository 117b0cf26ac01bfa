"""`python -m redispool worker|demo|stats ...`."""
import sys

from .cli import main

sys.exit(main())
