"""Prices and context windows as data (``prices.yaml``), and what a call cost."""

from modelyard.pricing.catalog import (
    Cost,
    CostSource,
    PriceCatalog,
    PriceEntry,
    billed_cost,
    combine,
    compute_cost,
)

__all__ = ["Cost", "CostSource", "PriceCatalog", "PriceEntry", "billed_cost", "combine", "compute_cost"]
