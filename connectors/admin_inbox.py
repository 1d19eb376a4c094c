"""The e-invoice inbox in the admin: the upload page of an inbox connection (one or many files,
or a zip) and the list of the files it received. Uploads go through
:func:`connectors.services.inbox_upload`; bounds are checked before a byte is read."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from connectors.errors import InvsyncError
from connectors.models import Connection, InboxFile
from connectors.providers.einvoice.detect import MAX_FILE_BYTES
from connectors.providers.einvoice.inbox import EInvoiceInbox, FileState
from connectors.services import inbox_upload

UPLOAD_MAX_FILES = 100
SHOWN_FILES = 50


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        if not files:
            raise forms.ValidationError(_("Choose at least one file."))
        if len(files) > UPLOAD_MAX_FILES:
            raise forms.ValidationError(
                f"{len(files)} files chosen; upload at most {UPLOAD_MAX_FILES} at once (or a zip)."
            )
        for upload in files:
            if upload.size > MAX_FILE_BYTES:
                raise forms.ValidationError(
                    f"{upload.name[:80]} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB."
                )
        return [super(MultipleFileField, self).clean(upload, initial) for upload in files]


class InboxUploadForm(forms.Form):
    files = MultipleFileField(
        label=_("E-invoices"),
        help_text="Factur-X/ZUGFeRD PDFs, CII or UBL XML files, or a zip of them "
        f"(at most {UPLOAD_MAX_FILES} files, {MAX_FILE_BYTES // (1024 * 1024)} MB each).",
    )


def is_inbox(connection: Connection) -> bool:
    return connection.provider == EInvoiceInbox.key and connection.kind == EInvoiceInbox.kind


def inbox_upload_view(model_admin: admin.ModelAdmin, request, object_id: str):
    """GET: the upload form and the files received; POST: receive the files."""
    connection = get_object_or_404(model_admin.get_queryset(request), pk=object_id)
    if not is_inbox(connection):
        raise Http404(_("not an e-invoice inbox"))
    if not model_admin.has_view_permission(request, connection):
        raise PermissionDenied
    form = InboxUploadForm()
    if request.method == "POST":
        if not model_admin.has_change_permission(request, connection):
            raise PermissionDenied
        form = InboxUploadForm(request.POST, request.FILES)
        if form.is_valid():
            files = [(upload.name, upload.read()) for upload in form.cleaned_data["files"]]
            try:
                receipts = inbox_upload(connection=connection, files=files)
            except InvsyncError as error:
                model_admin.message_user(request, error.message, messages.ERROR)
            else:
                for receipt in receipts:
                    level = (
                        messages.SUCCESS
                        if receipt.file.state == FileState.READ
                        else messages.INFO
                        if not receipt.created
                        else messages.WARNING
                    )
                    model_admin.message_user(request, receipt.message, level)
            return HttpResponseRedirect(request.path)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"E-invoice inbox: {connection.name}",
        "connection": connection,
        "form": form,
        "can_upload": model_admin.has_change_permission(request, connection),
        "files": InboxFile.objects.filter(connection=connection).order_by("-received_at", "-id")[
            :SHOWN_FILES
        ],
        "opts": Connection._meta,
        "change_url": reverse("admin:connectors_connection_change", args=[connection.pk]),
    }
    return TemplateResponse(request, "admin/connectors/inbox_upload.html", context)
