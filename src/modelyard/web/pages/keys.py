"""Keys (only with a master key): create, list and revoke virtual keys with their limits and budgets."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors
from modelyard.storage.base import new_virtual_key
from modelyard.web.base import Workbench, form_number, form_text, posted


def key_fields(form: Any) -> dict[str, Any]:
    """Limits from the create form: allowed models, RPM, TPM, budget, expiry."""
    fields: dict[str, Any] = {}
    models = [m.strip() for m in form_text(form, "allowed_models").replace("\n", ",").split(",") if m.strip()]
    if models:
        fields["allowed_models"] = models
    for name, kind in (("rpm", int), ("tpm", int), ("budget", float)):
        value = form_number(form, name, kind)
        if value is not None:
            if value <= 0:
                raise errors.BadRequestError(f"{name} must be more than 0", param=name)
            fields[name] = value
    expires = form_text(form, "expires")
    if expires:
        try:
            day = date.fromisoformat(expires)
        except ValueError:
            raise errors.BadRequestError("expiry must be a date", param="expires") from None
        if day <= datetime.now(UTC).date():
            raise errors.BadRequestError("expiry must be in the future", param="expires")
        fields["expires_at"] = datetime.combine(day, time(), UTC)
    return fields


class KeysPage:
    """``/keys`` and its create/revoke actions; answers 404 when no master key is set."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """Keys routes."""
        post = posted(self.bench)
        return [
            Route("/keys", self.page),
            Route("/ui/keys", post(self.create), methods=["POST"]),
            Route("/ui/keys/{id}/revoke", post(self.revoke), methods=["POST"]),
        ]

    def _hidden(self, request: Request) -> Response | None:
        if self.bench.auth_enabled:
            return None
        return self.bench.page(request, "not_found.html", status=404, what="page (keys need a master key)")

    async def _list(self, request: Request, created: str = "", name: str = "", full: bool = False) -> Response:
        store = await self.bench.store()
        keys = await store.keys.list()
        template = "keys.html" if full else "partials/keys_list.html"
        return self.bench.page(request, template, keys=keys, created=created, created_name=name, active="keys")

    async def page(self, request: Request) -> Response:
        """The Keys page."""
        return self._hidden(request) or await self._list(request, full=True)

    async def create(self, request: Request) -> Response:
        """Create a key; its plaintext is shown once."""
        hidden = self._hidden(request)
        if hidden is not None:
            return hidden
        form = await request.form()
        name = form_text(form, "name")
        if not name:
            raise errors.BadRequestError("a key needs a name", param="name")
        try:
            record, plaintext = new_virtual_key(
                name, self.bench.gateway.key_secret(), created_by="admin", **key_fields(form)
            )
        except ValueError as exc:
            raise errors.BadRequestError(f"invalid key settings: {exc}") from None
        store = await self.bench.store()
        await store.keys.create(record)
        return await self._list(request, created=plaintext, name=name)

    async def revoke(self, request: Request) -> Response:
        """Revoke a key (and drop it from the server's key cache)."""
        hidden = self._hidden(request)
        if hidden is not None:
            return hidden
        store = await self.bench.store()
        key_id = request.path_params["id"]
        if not await store.keys.revoke(key_id):
            raise errors.NotFoundError("no such key")
        resolver = getattr(request.app.state, "key_resolver", None)
        if resolver is not None:
            resolver.forget(key_id)
        return await self._list(request)
