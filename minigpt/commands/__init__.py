"""The ``minigpt`` commands: one module per command, each a ``main(argv) -> exit code`` that parses its options
and calls library functions (``minigpt.cli`` holds the table)."""
