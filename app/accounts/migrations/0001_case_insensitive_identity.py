from django.db import migrations

ON_COORDINATOR = {"sharded": False}


class Migration(migrations.Migration):
    """Usernames and emails are unique regardless of case ("Alice" and "alice" are one account)."""

    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunSQL(
            "CREATE UNIQUE INDEX accounts_username_ci ON auth_user (lower(username))",
            "DROP INDEX accounts_username_ci",
            hints=ON_COORDINATOR,
        ),
        migrations.RunSQL(
            "CREATE UNIQUE INDEX accounts_email_ci ON auth_user (lower(email)) WHERE email <> ''",
            "DROP INDEX accounts_email_ci",
            hints=ON_COORDINATOR,
        ),
    ]
