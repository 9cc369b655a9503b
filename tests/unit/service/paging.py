"""boto3's ``get_paginator`` for the tests' fake clients: pages follow NextToken, as botocore's do."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any


class Paginator:
    def __init__(self, call: Callable[..., Mapping[str, Any]]) -> None:
        self._call = call

    def paginate(self, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
        while True:
            page = self._call(**kwargs)
            yield page
            token = page.get("NextToken")
            if not token:
                return
            kwargs = {**kwargs, "NextToken": token}


class Paginated:
    """Mixin for a fake client: ``get_paginator(op)`` pages through the fake's own method ``op``."""

    def get_paginator(self, operation_name: str) -> Paginator:
        return Paginator(getattr(self, operation_name))
