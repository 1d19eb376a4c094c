"""The roles gain the audit of flow configuration (view_configchange)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# A copy of connectors.roles.ROLE_PERMISSIONS as of this migration: a migration must not import app
# code that may change later. tests/integration/test_access.py checks the two agree.
ROLE_PERMISSIONS = {
    "Accountant": (
        "connectors.view_client",
        "connectors.view_connection",
        "connectors.add_connection",
        "connectors.change_connection",
        "connectors.delete_connection",
        "mappings.view_syncflow",
        "mappings.add_syncflow",
        "mappings.change_syncflow",
        "mappings.delete_syncflow",
        "mappings.view_vatmapping",
        "mappings.add_vatmapping",
        "mappings.change_vatmapping",
        "mappings.delete_vatmapping",
        "mappings.view_journalmapping",
        "mappings.add_journalmapping",
        "mappings.change_journalmapping",
        "mappings.delete_journalmapping",
        "syncs.view_syncrun",
        "syncs.view_syncedrecord",
        "syncs.view_partnerlink",
        "syncs.delete_partnerlink",
        "mappings.view_configchange",
    ),
    "Operator": (
        "connectors.view_client",
        "connectors.view_connection",
        "mappings.view_syncflow",
        "mappings.view_vatmapping",
        "mappings.view_journalmapping",
        "syncs.view_syncrun",
        "syncs.add_syncrun",
        "syncs.view_syncedrecord",
        "syncs.change_syncedrecord",
        "mappings.view_configchange",
    ),
    "Viewer": (
        "connectors.view_client",
        "connectors.view_connection",
        "mappings.view_syncflow",
        "mappings.view_vatmapping",
        "mappings.view_journalmapping",
        "syncs.view_syncrun",
        "syncs.view_syncedrecord",
        "syncs.view_partnerlink",
        "mappings.view_configchange",
    ),
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after the whole migrate run (post_migrate); on a new
    # database they do not exist yet here, so create those of the three apps now.
    for app_label in ("connectors", "mappings", "syncs"):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(
            app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps
        )
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    db = schema_editor.connection.alias
    for role, names in ROLE_PERMISSIONS.items():
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            permissions.append(
                Permission.objects.using(db).get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group, _ = Group.objects.using(db).get_or_create(name=role)
        group.permissions.set(permissions)


def delete_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(
        name__in=ROLE_PERMISSIONS
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("connectors", "0001_initial"),
        ("syncs", "0001_initial"),
        ("connectors", "0002_roles"),
        ("mappings", "0002_config_change"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
