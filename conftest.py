import os

from streamcourse import pacing

# The checks in tests/labs get the learner's code through the `submission` fixture.
pytest_plugins = ["streamcourse.checking"]

# Lab notebooks executed for the checks pace their demo cells for people; run them fast.
os.environ.setdefault(pacing.ENV, pacing.CHECKING_SPEED)
