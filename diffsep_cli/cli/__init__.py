"""The command line: a thin Typer layer over the library (torch imported only by commands)."""
