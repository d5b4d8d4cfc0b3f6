"""`python -m irat …` (also the entry point under `torchrun -m irat`)."""
import sys

from .cli import main

sys.exit(main())
