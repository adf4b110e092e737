"""Settings for the test suite: the real settings, with a test data directory and a
queue of its own for each test session (so stray messages never reach another run)."""

import os
import uuid
from pathlib import Path

os.environ.setdefault("EASYMEMORY_DATA_DIR", str(Path(__file__).resolve().parent.parent / ".testdata"))
os.environ.setdefault("EASYMEMORY_QUEUE", f"easymemory-test-{uuid.uuid4().hex[:8]}")
# The suite sends many anonymous requests from one address (127.0.0.1) within seconds; tests
# of the per-address limit set their own figures. Subprocess servers inherit this environment.
os.environ.setdefault("EASYMEMORY_ANON_RATE_LIMIT_PER_MIN", "100000")
os.environ.setdefault("EASYMEMORY_ANON_RATE_LIMIT_BURST", "100000")

from config.startup import data_dir_prepare  # noqa: E402

data_dir_prepare()  # the test run is an entry point like manage.py

from django.contrib.auth.hashers import PBKDF2PasswordHasher  # noqa: E402

from config.settings import *  # noqa: E402,F403


class FewRoundsPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """The shipped hasher (same algorithm name, so hashes made here verify in a server started with the
    real settings, which rehashes them at full strength on login) with fewer rounds: at a million rounds,
    hashing dominated the tests that make users or OAuth clients or check passwords and client secrets."""

    iterations = 1_000


PASSWORD_HASHERS = ["config.test_settings.FewRoundsPBKDF2PasswordHasher"]
