from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mappings", "0003_flow_start_date_and_currency_checked"),
    ]

    operations = [
        migrations.AlterField(
            model_name="vatmapping",
            name="target_code",
            field=models.CharField(
                help_text="The VAT code in the accounting tool (for a reverse-charge tax: the "
                "deductible one).",
                max_length=50,
                verbose_name="accounting VAT code",
            ),
        ),
        migrations.AddField(
            model_name="vatmapping",
            name="collected_code",
            field=models.CharField(
                blank=True,
                help_text="Only for a purchase tax the buyer self-assesses (reverse charge, "
                "intra-EU acquisition): the VAT code of the VAT due (e.g. 4452). The same amount "
                "is booked on both codes, deductible as a debit and collected as a credit.",
                max_length=50,
                verbose_name="collected VAT code (reverse charge)",
            ),
        ),
    ]
