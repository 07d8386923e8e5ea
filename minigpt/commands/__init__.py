"""One module per ``minigpt`` command: each has ``main(argv) -> exit code`` and calls library functions."""
