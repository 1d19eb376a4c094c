from django.db import migrations, models
from django.db.models import CharField, F, Value
from django.db.models.functions import Cast, Concat


def key_written_entries(apps, schema_editor):
    """Records written before keys became per source account keep the key their entry carries
    (``invsync:<flow id>:<type>:<source id>``), so they are found again by it."""
    SyncedRecord = apps.get_model("syncs", "SyncedRecord")
    SyncedRecord.objects.filter(status__in=["synced", "pushing"], entry_key="").update(
        entry_key=Concat(
            Value("invsync:"),
            Cast("flow_id", output_field=CharField()),
            Value(":"),
            F("object_type"),
            Value(":"),
            F("source_id"),
            output_field=CharField(),
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("syncs", "0002_invoice_type_labels"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncedrecord",
            name="entry_key",
            field=models.CharField(
                blank=True,
                help_text="The external id its entry was written (or is being written) under in "
                "the accounting tool; every flow writing to the folder looks for it before "
                "writing.",
                max_length=200,
                verbose_name="key in accounting",
            ),
        ),
        migrations.AddField(
            model_name="syncedrecord",
            name="note",
            field=models.CharField(
                blank=True,
                help_text="What invsync found when it went to write the entry, e.g. that another "
                "flow had already written it.",
                max_length=500,
                verbose_name="note",
            ),
        ),
        migrations.RunPython(key_written_entries, migrations.RunPython.noop),
    ]
