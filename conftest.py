# The checks in tests/labs get the learner's code through the `submission` fixture.
pytest_plugins = ["streamcourse.checking"]
