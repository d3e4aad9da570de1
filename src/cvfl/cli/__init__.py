"""Command-line front end (typer). The only place that configures logging and exits."""
