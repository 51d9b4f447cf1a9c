"""The ``wavemae`` subcommands, one module each; :mod:`wavemae.cli` registers them on its app.

Each module imports only typer at the top and everything heavy (torch, the service) inside
its command's body, so importing any of them stays cheap.
"""
