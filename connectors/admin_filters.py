"""Admin list filters that offer only what the user may see.

Django's RelatedFieldListFilter offers every row of the related model (a "By client" filter names
every client of the firm), and RelatedOnlyFieldListFilter every row the listed rows point to. The
filter here offers the rows the listed rows point to *and* that the related model's admin shows
the user: their clients' rows, never another client's name or id. ClientScopedAdminMixin puts it
in place of any other filter on a relation, so that a new ``list_filter = ("client",)`` is scoped
too.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q


def client_scope(model, request, admin_site) -> Q | None:
    """The condition keeping ``model``'s rows of the user's clients, from the path to the client
    its admin declares (``client_lookup``); None when the user sees every client (a superuser) or
    ``model`` has no client-scoped admin."""
    if request.user.is_superuser:
        return None
    lookup = getattr(admin_site._registry.get(model), "client_lookup", None)
    if lookup is None:
        return None
    return Q(**{f"{lookup}__members" if lookup else "members": request.user})


class ClientScopedRelatedFilter(admin.RelatedOnlyFieldListFilter):
    """Filter by a related object: only those the listed rows point to, of the user's clients."""

    def field_choices(self, field, request, model_admin):
        listed = (
            model_admin.get_queryset(request)
            .distinct()
            .values_list(f"{self.field_path}__pk", flat=True)
        )
        limit = Q(pk__in=listed)
        scope = client_scope(field.related_model, request, model_admin.admin_site)
        if scope is not None:
            limit &= scope
        ordering = self.field_admin_ordering(field, request, model_admin)
        related = getattr(field.remote_field, "get_related_field", None)
        if related is None:
            return field.get_choices(include_blank=False, limit_choices_to=limit, ordering=ordering)
        # As field.get_choices, with the clients the rows' names read in the same query (one
        # query per row otherwise: a flow or connection is named "client · name").
        rows = field.related_model._default_manager.filter(limit)
        rows = named_rows(rows.order_by(*ordering) if ordering else rows)
        key = related().attname
        return [(getattr(row, key), str(row)) for row in rows]


def named_rows(queryset):
    """``queryset`` reading with each row the client its name shows (a flow's, a connection's,
    a mapping's flow's)."""
    names = {f.name for f in queryset.model._meta.get_fields() if f.many_to_one}
    if "client" in names:
        return queryset.select_related("client")
    if "flow" in names:
        return queryset.select_related("flow__client")
    return queryset


def scoped_list_filter(model, list_filter) -> list:
    """``list_filter`` with every filter on a relation (a plain field name or a related-field
    filter class) replaced by :class:`ClientScopedRelatedFilter`."""
    scoped = []
    for item in list_filter:
        if isinstance(item, str):
            try:
                field = get_fields_from_path(model, item)[-1]
            except (FieldDoesNotExist, NotRelationField):
                field = None
            if field is not None and field.is_relation:
                item = (item, ClientScopedRelatedFilter)
        elif (
            isinstance(item, tuple | list)
            and len(item) == 2
            and isinstance(item[1], type)
            and issubclass(item[1], admin.RelatedFieldListFilter)
            and not issubclass(item[1], ClientScopedRelatedFilter)
        ):
            item = (item[0], ClientScopedRelatedFilter)
        scoped.append(item)
    return scoped
