"""The ShellTask Lambda."""
