"""The web workbench: playground, chat, compare, logs, usage and keys, served by the gateway's HTTP server."""
