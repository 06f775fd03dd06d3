"""The command line: argument parsing (`main`), the commands, the demo."""
