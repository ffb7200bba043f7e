"""One module per workbench page."""
