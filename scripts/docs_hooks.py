"""MkDocs hooks for the modelyard site (loaded by mkdocs.yml's ``hooks:``; nothing here touches the network).

``docs/operations.md`` is written separately from the rest of the site. Until it is in the checkout, the site
gets a short stand-in page, so the build (and every link to the page) still works; the real page replaces it as
soon as it exists.
"""

from __future__ import annotations

import logging
from typing import Any

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.modelyard")

STAND_IN = """# Operations

This page — running replicas, PostgreSQL, Redis, Kubernetes, metrics to alert on, backups and retention,
upgrades and migrations — is not in this checkout yet (`docs/operations.md`).

Meanwhile: [The HTTP gateway](server.md) lists the server's limits, health and metrics endpoints;
[Routing and reliability](routing.md) explains what Redis shares between replicas; and
[Security](security.md) lists what is stored.
"""


def on_files(files: Files, config: Any) -> Files:
    if files.get_file_from_path("operations.md") is None:
        log.info("docs/operations.md is missing: using a stand-in page")
        files.append(File.generated(config, "operations.md", content=STAND_IN))
    return files
