"""Time spent on hostile text at the maximum content size: every regular expression applied to
user text (the set tests/memory/test_regex_linear.py checks), on runs of the characters that
make a backtracking matcher retry, plus the whole redaction and offline extraction of a memory.

python bench/hostile_input.py            # EASYMEMORY_MAX_CONTENT_BYTES characters per input
python bench/hostile_input.py --size 50000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    import django

    django.setup()
    from django.conf import settings

    from graph.providers.offline import OfflineExtractor
    from memory.redaction import redact_secrets
    from tests.memory.test_regex_linear import PATTERNS, UNITS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=settings.EASYMEMORY_MAX_CONTENT_BYTES)
    args = parser.parse_args()
    inputs = {unit: (unit * (args.size // len(unit) + 1))[: args.size] for unit in UNITS}
    print(f"{len(PATTERNS)} patterns × {len(UNITS)} inputs of {args.size} characters; load average {os.getloadavg()}")
    worst: list[tuple[float, str, str]] = []
    for name, run in PATTERNS:
        slowest, slowest_unit = 0.0, ""
        for unit, text in inputs.items():
            started = time.perf_counter()
            run(text)
            took = time.perf_counter() - started
            if took > slowest:
                slowest, slowest_unit = took, unit
        worst.append((slowest, name, slowest_unit))
    worst.sort(reverse=True)
    print("slowest patterns (worst input each):")
    for took, name, unit in worst[:10]:
        print(f"  {took * 1000:8.1f} ms  {name}  on runs of {unit!r}")
    for label, function in (("redact_secrets", redact_secrets), ("offline extraction", OfflineExtractor().extract)):
        slowest, slowest_unit = 0.0, ""
        for unit, text in inputs.items():
            started = time.perf_counter()
            function(text)
            took = time.perf_counter() - started
            if took > slowest:
                slowest, slowest_unit = took, unit
        print(f"whole {label}: worst {slowest * 1000:.1f} ms (runs of {slowest_unit!r})")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
