"""Coverage-guided fuzzing (atheris) of the parsers that read untrusted input: the HTTP codec, CESQL, event
patterns and manifests. Each harness turns a byte string into one call of the real entry point; whatever it
raises besides the module's documented refusal is a crash. See ``run.py`` for running one target."""
