from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('outbox', '0007_outbox_lease'),
    ]

    operations = [
        migrations.AddField(
            model_name='outboxmessage',
            name='traceparent',
            field=models.CharField(blank=True, default='', help_text='W3C trace context of the saga.', max_length=55),
        ),
        migrations.AddIndex(
            model_name='deadletter',
            index=models.Index(condition=models.Q(('replayed_at__isnull', True)), fields=['created_at'], name='deadletter_open_idx'),
        ),
    ]
