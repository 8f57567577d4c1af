"""Test-only pauses at named stages of a run, so tests interrupt it where they mean to, not when.

A test of Ctrl-C that sleeps "long enough" and then sends SIGINT checks whatever stage the run
happened to be in: on a busy machine that is another stage than on an idle one, and the test's
verdict follows the machine's load. Instead the test names the stage, the run stops there and
says so, and the test sends its signal to a run that is certainly at that stage.

Two environment variables, read only here and never set outside tests:

- `MLC_TEST_PAUSE_AT=STAGE`: when the run reaches STAGE it pauses until interrupted (SIGINT).
  Stages: `profile-point` (mlc profile, once a load point is measured and reported) and
  `locust-stage-K` (the locust load generator, halfway through stage K of a ladder, counted
  from 1: it stops sending, and the run is taken as stopped at that instant).
- `MLC_TEST_PAUSED_FILE=PATH`: the file the pause creates (holding the stage's name) once the
  run has paused, for the test to wait on.

Unset, each check costs one dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

PAUSE_AT_ENV = "MLC_TEST_PAUSE_AT"
PAUSED_FILE_ENV = "MLC_TEST_PAUSED_FILE"


def pause_requested(stage: str) -> bool:
    """Whether a test asked the run to pause at `stage`."""
    return os.environ.get(PAUSE_AT_ENV) == stage


def announce_pause(stage: str) -> None:
    """Tell the waiting test that the run has paused at `stage`: a line on stderr and the paused file."""
    print(f"mlc: paused at {stage} for a test ({PAUSE_AT_ENV}); waiting for an interrupt", file=sys.stderr,
          flush=True)
    path = os.environ.get(PAUSED_FILE_ENV)
    if path:
        Path(path).write_text(stage)


def pause_at(stage: str) -> None:
    """If a test asked for `stage`, pause here until a signal's exception (KeyboardInterrupt) ends the wait."""
    if not pause_requested(stage):
        return
    announce_pause(stage)
    while True:
        time.sleep(0.1)  # short: a signal taken by another thread still reaches this one soon
